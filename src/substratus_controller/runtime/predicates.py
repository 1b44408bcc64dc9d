"""Update-event predicates for `Controller.for_kind/owns/watches` (controller-runtime's predicate package).

Each takes (old, new) and says whether the update deserves a reconcile. Creates, deletes and periodic
resyncs are never filtered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from substratus_controller.jsontypes import JSON

Predicate = Callable[[JSON, JSON], bool]


def _meta(obj: JSON, field: str) -> Any:
    return obj.get("metadata", {}).get(field)


def generation_changed(old: JSON, new: JSON) -> bool:
    """Spec changes (metadata.generation moves); status-only writes are ignored."""
    return bool(_meta(old, "generation") != _meta(new, "generation"))


def annotations_changed(old: JSON, new: JSON) -> bool:
    return bool((_meta(old, "annotations") or {}) != (_meta(new, "annotations") or {}))


def labels_changed(old: JSON, new: JSON) -> bool:
    return bool((_meta(old, "labels") or {}) != (_meta(new, "labels") or {}))


def deletion_started(old: JSON, new: JSON) -> bool:
    return _meta(old, "deletionTimestamp") is None and _meta(new, "deletionTimestamp") is not None


def status_changed(old: JSON, new: JSON) -> bool:
    return bool(old.get("status") != new.get("status"))


def resource_version_changed(old: JSON, new: JSON) -> bool:
    return bool(_meta(old, "resourceVersion") != _meta(new, "resourceVersion"))


def any_of(*predicates: Predicate) -> Predicate:
    def check(old: JSON, new: JSON) -> bool:
        return any(p(old, new) for p in predicates)

    return check


# What a parent's own controller cares about: its spec, its annotations/labels (e.g. a retry annotation),
# and deletion. Its own status writes do not trigger another reconcile.
spec_or_metadata_changed: Predicate = any_of(generation_changed, annotations_changed, labels_changed, deletion_started)
