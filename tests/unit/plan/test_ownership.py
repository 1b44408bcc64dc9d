"""plan/ownership.py: which existing objects the controller may write, and the ChildConflict report (fast tier).

Table: (desired child, existing object) -> ours?  A child of one object needs a controller ownerReference to
that object's uid; a shared object without ownerReferences (ServiceAccount, mount objects) needs our label.
"""

from __future__ import annotations

from typing import Any

import pytest

from substratus_controller.constants import WARNING_REASONS, Kind, Reason
from substratus_controller.plan.ownership import CONFLICT_RECHECK, conflict_plan, controlled_by, describe, ours

UID = "uid-1"
OURS = {"app.kubernetes.io/managed-by": "substratus"}


def obj(*, owner: str | None = None, controller: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x-server", "namespace": "ns"}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": "Server", "name": "x", "uid": owner, "controller": controller}]
    if labels is not None:
        meta["labels"] = labels
    return {"kind": "Service", "metadata": meta}


OWNED_CHILD = obj(owner=UID, labels=OURS)  # what the plan wants for a child of one object
SHARED = obj(labels=OURS)  # what the plan wants for a shared ServiceAccount or mount object


@pytest.mark.parametrize(
    ("desired", "existing", "expected"),
    [
        pytest.param(OWNED_CHILD, obj(owner=UID, labels=OURS), True, id="child/controlled-by-us"),
        pytest.param(OWNED_CHILD, obj(owner=UID), True, id="child/controlled-by-us-label-removed"),
        pytest.param(OWNED_CHILD, obj(), False, id="child/unlabelled-unowned"),
        pytest.param(OWNED_CHILD, obj(labels=OURS), False, id="child/labelled-but-unowned"),
        pytest.param(OWNED_CHILD, obj(owner="uid-2", labels=OURS), False, id="child/another-objects"),
        pytest.param(OWNED_CHILD, obj(owner=UID, controller=False), False, id="child/owner-but-not-controller"),
        pytest.param(SHARED, obj(labels=OURS), True, id="shared/labelled"),
        pytest.param(SHARED, obj(), False, id="shared/unlabelled"),
        pytest.param(SHARED, obj(labels={"app.kubernetes.io/managed-by": "helm"}), False, id="shared/other-manager"),
    ],
)
def test_ours(desired: dict[str, Any], existing: dict[str, Any], expected: bool) -> None:
    assert ours(desired, existing, UID) is expected


def test_controlled_by_none_is_false() -> None:
    assert controlled_by(None, UID) is False


def test_describe_names_the_kind_the_name_and_the_controller() -> None:
    assert describe(obj(), "Service") == "Service x-server (not created by substratus)"
    assert describe(obj(owner="uid-2"), "Service") == "Service x-server (controlled by Server x)"


def test_conflict_plan_writes_nothing_reports_each_name_and_rechecks() -> None:
    raw = {"metadata": {"name": "x", "namespace": "ns", "generation": 3, "uid": UID}, "status": {}}
    plan = conflict_plan(
        raw, Kind.SERVER, ["Service x-server (a)", "ConfigMap x-server-params (b)"], "2026-01-01T00:00:00Z"
    )
    assert (plan.children(), plan.delete, plan.spec_image, plan.sign_upload) == ([], [], None, None)
    assert plan.requeue_after == CONFLICT_RECHECK
    serving = next(c for c in plan.status["conditions"] if c["type"] == "Serving")
    assert (serving["status"], serving["reason"]) == ("False", Reason.CHILD_CONFLICT)
    assert "Service x-server (a); ConfigMap x-server-params (b) already exist" in serving["message"]
    assert (plan.status["ready"], plan.status["observedGeneration"]) == (False, 3)


def test_a_conflict_is_a_warning() -> None:
    assert Reason.CHILD_CONFLICT in WARNING_REASONS
