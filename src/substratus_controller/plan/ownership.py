"""Which existing objects are ours to write, and the report when a child's name is taken (pure).

The controller writes only what it created: an object it would apply or create must either not exist, or
be ours. "Ours" means, for a child of one object, a controller ownerReference to that object's uid; for
the shared per-namespace objects that carry no ownerReference (the workload ServiceAccounts, a driver's
mount objects), the `app.kubernetes.io/managed-by: substratus` label the controller puts on them.

A name taken by anything else is a conflict: the object reports `<main condition>=False/ChildConflict`
naming each taken child, with an Event, writes nothing at all (no child, no build, no spec.image), and
looks again every CONFLICT_RECHECK seconds (objects without our label are not watched, so their removal
arrives by no event); the other object is never modified.
"""

from __future__ import annotations

from substratus_controller.constants import LABEL_MANAGED_BY, MANAGED_BY_VALUE, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.status.conditions import Cond

from .outcome import Plan
from .status import MAIN_CONDITION, status_of

CONFLICT_RECHECK = 60.0  # seconds between looks at a conflicting object (a poll, never a retry storm)


def controlled_by(obj: JSON | None, uid: str) -> bool:
    """Whether `obj` has a controller ownerReference to `uid`."""
    if obj is None:
        return False
    refs = obj.get("metadata", {}).get("ownerReferences") or ()
    return any(r.get("controller") and r.get("uid") == uid for r in refs)


def ours(desired: JSON, existing: JSON, uid: str) -> bool:
    """Whether `existing` (the object of `desired`'s name) may be written for the object `uid`."""
    if desired.get("metadata", {}).get("ownerReferences"):
        return controlled_by(existing, uid)
    labels = existing.get("metadata", {}).get("labels") or {}
    return bool(labels.get(LABEL_MANAGED_BY) == MANAGED_BY_VALUE)


def describe(existing: JSON, kind: str) -> str:
    """`<Kind> <name>` and who controls it, for the condition's message."""
    meta = existing.get("metadata", {})
    owner = next((r for r in meta.get("ownerReferences") or () if r.get("controller")), None)
    by = f"controlled by {owner.get('kind')} {owner.get('name')}" if owner else "not created by substratus"
    return f"{existing.get('kind') or kind} {meta.get('name')} ({by})"


def conflict_plan(raw: JSON, kind: Kind, taken: list[str], now: str) -> Plan:
    """The Plan of an object whose children's names are taken: the ChildConflict report and a recheck."""
    message = (
        f"{'; '.join(taken)} already exist{'s' if len(taken) == 1 else ''}: the controller does not write "
        "objects it did not create; delete or rename the other object, or rename this one"
    )
    main = Cond(MAIN_CONDITION[kind], False, Reason.CHILD_CONFLICT, message)
    return Plan(status=status_of(raw, main=main, blockers=[], now=now), requeue_after=CONFLICT_RECHECK)
