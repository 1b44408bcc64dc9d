"""Conditions: compute the list a status should hold, keeping Kubernetes' transition semantics (pure).

Invariants:
- `merge_conditions` returns exactly the desired condition types, in a fixed order (Uploaded, Built,
  Complete, Serving, Ready); types no longer desired are dropped.
- `lastTransitionTime` is kept from the existing condition of the same type when its status did not flip,
  and set to `now` otherwise; reason and message always follow the desired ones.
- Every condition carries `observedGeneration`; an empty message is omitted (API servers before 1.22 turn an
  applied "" into null and reject it).
- `ready_condition` mirrors `status.ready`: True exactly when the main condition is True; otherwise its reason
  and message are those of the first blocking condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from substratus_controller.api.v1.base import MAX_MESSAGE
from substratus_controller.constants import ConditionStatus, ConditionType, Reason
from substratus_controller.jsontypes import JSON

_ORDER = [ConditionType.UPLOADED, ConditionType.BUILT, ConditionType.COMPLETE, ConditionType.SERVING,
          ConditionType.READY]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cond:
    """A desired condition (without times)."""

    type: ConditionType
    ok: bool
    reason: Reason
    message: str = ""

    @property
    def status(self) -> ConditionStatus:
        return ConditionStatus.TRUE if self.ok else ConditionStatus.FALSE


def ready_condition(main: Cond | None, blockers: Sequence[Cond] = ()) -> Cond:
    """The `Ready` condition: True iff `main` is True and nothing blocks; else the first failing reason.

    Without a main condition (the workload has not started, e.g. the image was just built and `spec.image`
    is being set) Ready is False: waiting for the workload."""
    for cond in (*blockers, main):
        if cond is not None and not cond.ok:
            return Cond(ConditionType.READY, False, cond.reason, cond.message)
    if main is None:
        return Cond(ConditionType.READY, False, Reason.JOB_NOT_COMPLETE, "Image built; starting the workload")
    return Cond(ConditionType.READY, True, main.reason, main.message)


def merge_conditions(
    existing: Iterable[JSON] | None, desired: Iterable[Cond], *, generation: int, now: str
) -> list[JSON]:
    """The conditions list to write (see module docstring)."""
    previous = {c.get("type"): c for c in existing or ()}
    by_type = {c.type: c for c in desired}
    out: list[JSON] = []
    for ctype in _ORDER:
        cond = by_type.get(ctype)
        if cond is None:
            continue
        old = previous.get(ctype.value) or {}
        kept = old.get("lastTransitionTime") if old.get("status") == cond.status.value else None
        item: JSON = {
            "type": ctype.value,
            "status": cond.status.value,
            "observedGeneration": generation,
            "lastTransitionTime": kept or now,
            "reason": cond.reason.value,
        }
        if cond.message:
            item["message"] = fit_message(cond.message)
        out.append(item)
    return out


def fit_message(message: str) -> str:
    """`message` cut to the CRD's maxLength for condition messages (a longer one fails the status write)."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def find(conditions: Iterable[JSON] | None, ctype: ConditionType) -> JSON | None:
    for c in conditions or ():
        if c.get("type") == ctype.value:
            return c
    return None


def transitions(old: Iterable[JSON] | None, new: Iterable[JSON]) -> list[JSON]:
    """Conditions of `new` whose status or reason differs from `old` (what deserves an Event)."""
    before = {c.get("type"): (c.get("status"), c.get("reason")) for c in old or ()}
    return [c for c in new if before.get(c["type"]) != (c["status"], c["reason"])]
