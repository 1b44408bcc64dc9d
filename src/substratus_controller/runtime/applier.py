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

from typing import Protocol

from substratus_controller.jsontypes import JSON

from .client import Client
from .resource import Resource
from .stamp import is_up_to_date, stamp


class WriteThrough(Protocol):
    """What the applier needs of a cache: a read and write-through (CachedResource provides both)."""

    def get(self, namespace: str | None, name: str) -> JSON | None: ...

    def observe(self, obj: JSON) -> None: ...


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

    async def apply(
        self, resource: Resource, desired: JSON, *, cache: WriteThrough | None = None, force: bool = True
    ) -> JSON | None:
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

    async def apply_status(
        self, resource: Resource, obj: JSON, status: JSON, *, cache: WriteThrough | None = None, force: bool = True
    ) -> JSON | None:
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
