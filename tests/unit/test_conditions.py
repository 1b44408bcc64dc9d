"""Condition bookkeeping: transition times, order, Ready mirroring, omitted empty messages."""

from __future__ import annotations

from substratus_controller.api.v1.base import MAX_MESSAGE
from substratus_controller.constants import ConditionType as T
from substratus_controller.constants import Reason as R  # noqa: N817
from substratus_controller.status.conditions import Cond, merge_conditions, ready_condition, transitions

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def test_transition_time_kept_while_status_holds_and_reset_when_it_flips() -> None:
    first = merge_conditions(None, [Cond(T.COMPLETE, False, R.JOB_NOT_COMPLETE, "waiting")], generation=1, now=T0)
    same = merge_conditions(first, [Cond(T.COMPLETE, False, R.SPEC_CHANGED, "other")], generation=2, now=T1)
    assert same[0]["lastTransitionTime"] == T0
    assert (same[0]["reason"], same[0]["message"], same[0]["observedGeneration"]) == ("SpecChanged", "other", 2)
    flipped = merge_conditions(same, [Cond(T.COMPLETE, True, R.JOB_COMPLETE)], generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] == T1
    assert "message" not in flipped[0]


def test_fixed_order_and_dropped_types() -> None:
    conds = [Cond(T.READY, False, R.BUILD_FAILED), Cond(T.COMPLETE, False, R.JOB_NOT_COMPLETE),
             Cond(T.BUILT, False, R.BUILD_FAILED)]  # fmt: skip
    out = merge_conditions(None, conds, generation=1, now=T0)
    assert [c["type"] for c in out] == ["Built", "Complete", "Ready"]
    again = merge_conditions(out, [Cond(T.COMPLETE, True, R.JOB_COMPLETE)], generation=1, now=T0)
    assert [c["type"] for c in again] == ["Complete"]


def test_ready_mirrors_main_and_takes_the_first_blocking_reason() -> None:
    ok = Cond(T.SERVING, True, R.POD_READY, "up")
    assert ready_condition(ok) == Cond(T.READY, True, R.POD_READY, "up")
    built = Cond(T.BUILT, False, R.BUILD_FAILED, "boom")
    assert ready_condition(ok, [built]) == Cond(T.READY, False, R.BUILD_FAILED, "boom")
    down = Cond(T.SERVING, False, R.SUSPENDED, "zz")
    assert ready_condition(down, [Cond(T.BUILT, True, R.JOB_COMPLETE)]).reason == R.SUSPENDED
    waiting = ready_condition(None, [Cond(T.BUILT, True, R.JOB_COMPLETE)])
    assert (waiting.ok, waiting.reason) == (False, R.JOB_NOT_COMPLETE)


def test_transitions_list_what_deserves_an_event() -> None:
    old = merge_conditions(None, [Cond(T.COMPLETE, False, R.JOB_NOT_COMPLETE, "a")], generation=1, now=T0)
    desired = [Cond(T.COMPLETE, False, R.JOB_NOT_COMPLETE, "b"), Cond(T.READY, False, R.JOB_NOT_COMPLETE)]
    new = merge_conditions(old, desired, generation=1, now=T1)
    assert [c["type"] for c in transitions(old, new)] == ["Ready"]  # a message change alone is no event


def test_a_message_longer_than_the_crd_allows_is_cut_to_fit() -> None:
    """Security model (README): a longer message would make the status write itself fail."""
    (long,) = merge_conditions(
        [], [Cond(T.READY, False, R.INVALID_SPEC, "x" * (MAX_MESSAGE + 10))], generation=1, now="2026-01-01T00:00:00Z"
    )
    assert len(long["message"]) == MAX_MESSAGE
    assert long["message"].endswith("…")
    (short,) = merge_conditions(
        [], [Cond(T.READY, False, R.INVALID_SPEC, "fits")], generation=1, now="2026-01-01T00:00:00Z"
    )
    assert short["message"] == "fits"
