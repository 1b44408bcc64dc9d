"""Server-side apply that writes only when something changed, and makes its writes visible to readers at once.

Contract:
- `apply(resource, desired, cache=...)`: the desired body gets an annotation holding a digest of itself.
  The apply is skipped (no request) when the cached object carries the same digest AND the desired body is
  a subset of the cached one: the digest catches fields removed from the desired body (server-side apply
  then removes them), the subset catches drift made by other writers. Top-level sections the cache does
  not keep (a projection may drop e.g. a Job's immutable spec) are not compared.
- `apply_status(resource, obj, status, cache=...)` applies `status` on the status subresource unless it equals
  the cached status exactly (equality, not subset: a field left out must be removed by the apply).
- Every write goes through the cache's write-through (`observe`), so the next reconcile reads its result
  even before the watch event arrives.
- Bodies are plain dicts; the caller guarantees no empty lists or nulls (the server would drop them and the
  digest would still match, which is fine; but a body the schema lacks fails on old API servers).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import orjson

from substratus_controller.jsontypes import JSON

from .client import Client
from .resource import Resource


class WriteThrough(Protocol):
    """What the applier needs of a cache: a read and write-through (CachedResource provides both)."""

    def get(self, namespace: str | None, name: str) -> JSON | None: ...

    def observe(self, obj: JSON) -> None: ...


_ZERO: tuple[Any, ...] = (False, 0, "", None)


def is_subset(desired: Any, actual: Any) -> bool:
    """Whether every field of `desired` is in `actual` with the same value (server defaults may add more).

    Dicts: every key of `desired` must match, except that a zero value (false, 0, "") matches an absent key,
    because the API server omits zero values of `omitempty` fields; lists: same length, element-wise;
    scalars: equal."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            is_subset(v, actual[k]) if k in actual else (v in _ZERO and not isinstance(v, dict | list))
            for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return bool(desired == actual)


def digest(body: JSON) -> str:
    """A stable digest of a body (key order does not matter)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:20]


def stamp(desired: JSON, annotation: str) -> JSON:
    """`desired` with `annotation` set to the digest of everything else in it."""
    meta = desired.get("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != annotation}
    base_meta = (
        {**meta, "annotations": annotations} if annotations else {k: v for k, v in meta.items() if k != "annotations"}
    )
    annotations[annotation] = digest({**desired, "metadata": base_meta})
    return {**desired, "metadata": {**meta, "annotations": annotations}}


def is_up_to_date(stamped: JSON, cached: JSON | None, annotation: str) -> bool:
    """Whether `cached` already carries `stamped`'s digest, labels, annotations and (kept) sections."""
    if cached is None:
        return False
    want = stamped["metadata"]
    have = cached.get("metadata", {})
    if (have.get("annotations") or {}).get(annotation) != want["annotations"][annotation]:
        return False
    for field in ("labels", "annotations"):
        if not is_subset(want.get(field) or {}, have.get(field) or {}):
            return False
    return all(
        is_subset(value, cached[section])
        for section, value in stamped.items()
        if section not in ("apiVersion", "kind", "metadata") and section in cached
    )


class Applier:
    """Applies children and status for one controller (one field manager)."""

    def __init__(self, client: Client, *, field_manager: str, digest_annotation: str) -> None:
        self.client = client
        self.field_manager = field_manager
        self.digest_annotation = digest_annotation
        self.writes = 0  # requests made (for tests and benchmarks)

    def stamped(self, desired: JSON) -> JSON:
        return stamp(desired, self.digest_annotation)

    def up_to_date(self, stamped: JSON, cached: JSON | None) -> bool:
        return is_up_to_date(stamped, cached, self.digest_annotation)

    async def apply(self, resource: Resource, desired: JSON, *, cache: WriteThrough | None = None,
                    force: bool = True) -> JSON | None:  # fmt: skip
        """Apply `desired` unless the cached copy is up to date; return the API's answer, or None if skipped."""
        stamped = self.stamped(desired)
        meta = stamped["metadata"]
        cached = cache.get(meta.get("namespace"), meta["name"]) if cache is not None else None
        if self.up_to_date(stamped, cached):
            return None
        result = await self.client.apply(resource, stamped, field_manager=self.field_manager, force=force)
        self.writes += 1
        if cache is not None:
            cache.observe(result)
        return result

    async def apply_status(self, resource: Resource, obj: JSON, status: JSON, *, cache: WriteThrough | None = None,
                           force: bool = True) -> JSON | None:  # fmt: skip
        """Apply `status` for `obj` unless it equals the cached status; return the answer, or None if skipped."""
        meta = obj["metadata"]
        cached = cache.get(meta.get("namespace"), meta["name"]) if cache is not None else obj
        if cached is not None and cached.get("status") == status:
            return None
        body = {
            "apiVersion": obj.get("apiVersion", resource.api_version),
            "kind": obj.get("kind", resource.kind),
            "metadata": {"name": meta["name"], **({"namespace": meta["namespace"]} if meta.get("namespace") else {})},
            "status": status,
        }
        result = await self.client.apply_status(resource, body, field_manager=self.field_manager, force=force)
        self.writes += 1
        if cache is not None:
            cache.observe(result)
        return result
