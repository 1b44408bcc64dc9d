"""The labels, selectors and ownerReferences put on every child (docs/decisions.md §3: "labels from one helper").

Invariants:
- Every child carries `app.kubernetes.io/managed-by: substratus` and `substratus.ai/<kind>: <parent>`, plus
  upstream's `<kind>: <parent>` (kept so that upstream tooling, e.g. `sub run`'s pod watch on
  `<kind>=<name>`, keeps working). Pods (and the objects that run them) add `role: build|run`.
- Selectors use only labels that never change for the life of the parent (Deployment selectors are
  immutable): `substratus.ai/<kind>` and `role: run`.
- Owner references are controller references to the parent, so children are garbage-collected with it.
  ServiceAccounts are shared per namespace and get none (see serviceaccount.py).
- Label values are validated here (<= 63 characters, alphanumeric at both ends), never silently cut.
"""

from __future__ import annotations

import re
from typing import Any

from substratus_controller.api.v1 import Dataset, Model, Notebook, Server
from substratus_controller.constants import (
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    MANAGED_BY_VALUE,
    ROLE_RUN,
    Kind,
    kind_label,
)

Parent = Dataset | Model | Notebook | Server

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_label_value(key: str, value: str) -> str:
    """`value` if it is a valid, non-empty label value; ValueError naming `key` otherwise."""
    if not value or len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(f"invalid value {value!r} for label {key}: need 1-63 characters, alphanumeric at both ends")
    return value


def labels(kind: Kind, name: str, role: str | None) -> dict[str, str]:
    """The common labels of a child of `<kind>/<name>`; `role` (build/run) is omitted when None."""
    out = {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        kind_label(kind): check_label_value(kind_label(kind), name),
        kind.singular: name,
    }
    if role is not None:
        out[LABEL_ROLE] = check_label_value(LABEL_ROLE, role)
    return out


def selector(kind: Kind, name: str) -> dict[str, str]:
    """The selector of the running pods of `<kind>/<name>` (Server Deployment and Service)."""
    return {kind_label(kind): check_label_value(kind_label(kind), name), LABEL_ROLE: ROLE_RUN}


def owner_reference(obj: Parent) -> dict[str, Any]:
    """A controller ownerReference to `obj` (which must carry a uid, i.e. come from the API server)."""
    if not obj.metadata.name or not obj.metadata.uid:
        raise ValueError(f"{obj.kind} {obj.metadata.name!r} has no name or uid: cannot own children")
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
