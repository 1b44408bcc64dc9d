"""The applier's comparisons, pure: the digest stamp a desired body carries and the subset test against a
cached copy (see applier.py for the contract). Decisions (plan/) use them to tell a child that changed."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from substratus_controller.jsontypes import JSON

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
