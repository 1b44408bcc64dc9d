"""The status a plan reports: conditions merged with the previous ones, Ready, observedGeneration, and the
InvalidSpec/UnsupportedGPU report of a spec that cannot be acted upon (pure)."""

from __future__ import annotations

from pydantic import ValidationError

from substratus_controller.cloud.base import IdentityError, UnsupportedGPUError
from substratus_controller.constants import ConditionType, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.status.conditions import Cond, merge_conditions, ready_condition

from .outcome import Plan

MAIN_CONDITION = {
    Kind.DATASET: ConditionType.COMPLETE,
    Kind.MODEL: ConditionType.COMPLETE,
    Kind.NOTEBOOK: ConditionType.SERVING,
    Kind.SERVER: ConditionType.SERVING,
}


def validation_message(exc: ValidationError) -> str:
    """A one-line summary naming each offending field by its JSON path."""
    parts = []
    for err in exc.errors()[:5]:
        path = ".".join(str(p) for p in err["loc"])
        parts.append(f"{path}: {err['msg']}")
    more = f" (and {len(exc.errors()) - 5} more)" if len(exc.errors()) > 5 else ""
    return "; ".join(parts) + more


def status_of(raw: JSON, *, main: Cond | None, blockers: list[Cond], now: str, extra: JSON | None = None) -> JSON:
    """The whole status: ready, observedGeneration, conditions (+ Ready), and kind-specific fields."""
    generation = int(raw["metadata"].get("generation", 0))
    ready = ready_condition(main, blockers)
    conds = [c for c in (*blockers, main) if c is not None]
    previous = (raw.get("status") or {}).get("conditions")
    status: JSON = {
        "ready": ready.ok,
        "observedGeneration": generation,
        "conditions": merge_conditions(previous, [*conds, ready], generation=generation, now=now),
    }
    status.update(extra or {})
    return status


def invalid_status(raw: JSON, kind: Kind, error: str | Exception, now: str, *, blockers: list[Cond] | None = None,
                   extra: JSON | None = None) -> JSON:  # fmt: skip
    """The status of a spec that cannot be acted upon: `InvalidSpec` (or `UnsupportedGPU`, or
    `IdentityNotConfigured` for a namespace without a usable cloud identity) with the message;
    `blockers`/`extra` keep the build's own conditions and upload status when the build itself is fine."""
    reason = Reason.INVALID_SPEC
    if isinstance(error, UnsupportedGPUError):
        reason = Reason.UNSUPPORTED_GPU
    elif isinstance(error, IdentityError):
        reason = Reason.IDENTITY_NOT_CONFIGURED
    message = str(error) if not isinstance(error, str) else error
    main = Cond(MAIN_CONDITION[kind], False, reason, message)
    return status_of(raw, main=main, blockers=blockers or [], now=now, extra=extra)


def invalid_plan(raw: JSON, kind: Kind, error: str | Exception, now: str) -> Plan:
    """A Plan that only reports why the spec cannot be acted upon: no children, no retry."""
    return Plan(status=invalid_status(raw, kind, error, now))
