"""Helpers shared by the renderers: object identity, child metadata, and "set only when non-empty".

Invariants: a rendered body never holds None, "", [] or {} (except `emptyDir: {}`, which is how an
emptyDir volume is spelled and which the API server keeps), because the server drops those and a
server-side apply of the same body must be a no-op. `put` is the one place that enforces it for optional
fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from substratus_controller.constants import Kind
from substratus_controller.jsontypes import JSON

from .errors import InvalidSpecError
from .labels import Parent, labels, owner_reference


def put(target: JSON, key: str, value: Any) -> JSON:
    """Set `target[key] = value` unless value is None or an empty string/list/dict; returns `target`."""
    if value is None or (isinstance(value, (str, list, tuple, dict)) and not value):
        return target
    target[key] = list(value) if isinstance(value, tuple) else value
    return target


def volume_mount(mount: JSON) -> JSON:
    """A copy of a volumeMount without `readOnly: false`.

    `VolumeMount.readOnly` is a plain bool with omitempty, so the API server never stores `false`; keeping it
    in the body would make the applier's "is the desired body a subset of the cached one" check fail forever
    (a write on every reconcile). Cloud drivers may return it; it is dropped here.
    """
    return {k: v for k, v in mount.items() if not (k == "readOnly" and v is False)}


def identity(obj: Parent, kind: Kind) -> tuple[str, str]:
    """(name, namespace) of `obj`, checking that it is a `kind` and has both (it comes from the API server)."""
    if obj.kind != kind.value:
        raise ValueError(f"expected a {kind.value}, got a {obj.kind}")
    name, namespace = obj.metadata.name, obj.metadata.namespace
    if not name or not namespace:
        raise ValueError(f"{obj.kind} {name!r} has no name or namespace")
    return name, namespace


def child_metadata(
    obj: Parent,
    kind: Kind,
    *,
    name: str,
    role: str | None,
    extra_labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> JSON:
    """metadata of a child named `name` of `obj`: namespace, common labels, annotations, controller ownerRef."""
    parent, namespace = identity(obj, kind)
    meta: JSON = {
        "name": name,
        "namespace": namespace,
        "labels": {**labels(kind, parent, role), **(extra_labels or {})},
    }
    put(meta, "annotations", dict(annotations or {}))
    meta["ownerReferences"] = [owner_reference(obj)]
    return meta


def require_image(obj: Parent) -> str:
    """spec.image, which every workload needs (reconcilers only render workloads once it is set)."""
    if not obj.spec.image:
        raise InvalidSpecError("spec.image", "no image set (it is set by the build once the build has finished)")
    return obj.spec.image
