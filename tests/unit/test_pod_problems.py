"""status/pods.py as a table: a pod's real status (shapes as kubelet v1.20 reports them) -> the reason and the
message a user acts on. The same cases run against real containers in the real-node tier."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from substratus_controller.constants import Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.status.pods import first_problem, pod_problem, previous_pull_message, termination_detail


def pod(*, containers: Sequence[JSON] = (), init: Sequence[JSON] = (), conditions: Sequence[JSON] = (),
        created: str = "2026-12-01T10:00:00Z", deleting: bool = False) -> JSON:  # fmt: skip
    meta: JSON = {"name": "p", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T10:05:00Z"
    status: JSON = {"phase": "Pending", "conditions": list(conditions)}
    if containers:
        status["containerStatuses"] = list(containers)
    if init:
        status["initContainerStatuses"] = list(init)
    return {"metadata": meta, "status": status}


def cs(name: str = "model", *, state: JSON, last: JSON | None = None, ready: bool = False, restarts: int = 0,
       image: str = "substratus.local/model-trainer:0.1") -> JSON:  # fmt: skip
    return {"name": name, "image": image, "state": state, "lastState": last or {}, "ready": ready,
            "restartCount": restarts}  # fmt: skip


UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}  # fmt: skip
PULL_ERROR = 'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/nope:1": not found'
EXIT_3 = {"terminated": {"exitCode": 3, "reason": "Error", "message": "loading\nerror: no corpus named 'x'\n"}}
OOM = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}

CASES = [
    ("scheduled, creating", pod(containers=[cs(state={"waiting": {"reason": "ContainerCreating"}})]), False, None, ""),
    ("running", pod(containers=[cs(state={"running": {}}, ready=True)]), True, None, ""),
    ("completed", pod(containers=[cs(state={"terminated": {"exitCode": 0, "reason": "Completed"}})]), False, None, ""),
    ("unschedulable", pod(conditions=[UNSCHEDULABLE]), False, Reason.UNSCHEDULABLE, "Insufficient nvidia.com/gpu"),
    (
        "pull error",
        pod(containers=[cs(state={"waiting": {"reason": "ErrImagePull", "message": PULL_ERROR}}, image="nope:1")]),
        False,
        Reason.IMAGE_PULL_FAILED,
        'image "nope:1"',
    ),
    (
        "pull back-off",
        pod(
            containers=[
                cs(
                    state={"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope:1"'}},
                    image="nope:1",
                )
            ]
        ),
        True,
        Reason.IMAGE_PULL_FAILED,
        'image "nope:1"',
    ),
    (
        "invalid image",
        pod(containers=[cs(state={"waiting": {"reason": "InvalidImageName"}}, image="UPPER")]),
        False,
        Reason.IMAGE_PULL_FAILED,
        "UPPER",
    ),
    (
        "missing secret",
        pod(
            containers=[
                cs(state={"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "hf" not found'}})
            ]
        ),
        False,
        Reason.CONTAINER_CONFIG_ERROR,
        'secret "hf" not found',
    ),
    (
        "job exit 3",
        pod(containers=[cs(state=EXIT_3)]),
        False,
        Reason.CONTAINER_FAILED,
        "exit code 3: loading; error: no corpus named 'x'",
    ),
    ("job oom", pod(containers=[cs(state=OOM)]), False, Reason.OOM_KILLED, "OOMKilled"),
    ("server exits", pod(containers=[cs("serve", state=EXIT_3)]), True, Reason.CRASH_LOOP_BACK_OFF, "exit code 3"),
    (
        "server back-off",
        pod(
            containers=[
                cs(
                    "serve",
                    state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting"}},
                    last=EXIT_3,
                    restarts=2,
                )
            ]
        ),
        True,
        Reason.CRASH_LOOP_BACK_OFF,
        "keeps crashing (exit code 3: loading; error: no corpus named 'x')",
    ),
    (
        "server between crashes",
        pod(containers=[cs("serve", state={"running": {}}, last=EXIT_3, restarts=3)]),
        True,
        Reason.CRASH_LOOP_BACK_OFF,
        "exit code 3",
    ),
    (
        "server recovered",
        pod(containers=[cs("serve", state={"running": {}}, last=EXIT_3, restarts=3, ready=True)]),
        True,
        None,
        "",
    ),
    (
        "server oom, restarted",
        pod(containers=[cs("serve", state={"running": {}}, last=OOM, restarts=1)]),
        True,
        Reason.OOM_KILLED,
        "spec.resources.memory",
    ),
    (
        "init container fails first",
        pod(
            init=[cs("content", state=EXIT_3)],
            containers=[cs("notebook", state={"waiting": {"reason": "PodInitializing"}})],
        ),
        True,
        Reason.CRASH_LOOP_BACK_OFF,
        "init container content",
    ),
]


@pytest.mark.parametrize(("case", "p", "restarts", "reason", "words"), CASES, ids=[c[0] for c in CASES])
def test_pod_problem(case: str, p: JSON, restarts: bool, reason: Reason | None, words: str) -> None:
    problem = pod_problem(p, restarts=restarts)
    if reason is None:
        assert problem is None, case
        return
    assert problem is not None, case
    assert problem.reason == reason, case
    assert words in problem.message, (case, problem.message)


def test_back_off_keeps_the_pull_error_message() -> None:
    """The kubelet alternates ErrImagePull and ImagePullBackOff; the message must not flip with it."""
    first = pod_problem(
        pod(containers=[cs(state={"waiting": {"reason": "ErrImagePull", "message": PULL_ERROR}})]), restarts=False
    )
    assert first is not None
    previous = previous_pull_message({"reason": "ImagePullFailed", "message": first.message})
    backoff = pod(containers=[cs(state={"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}})])
    again = pod_problem(backoff, restarts=False, previous=previous)
    assert again == first
    assert previous_pull_message({"reason": "JobNotComplete", "message": "x"}) is None


def test_termination_detail_keeps_the_tail_and_is_bounded() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n" + "x" * 2000
    detail = termination_detail({"exitCode": 1, "reason": "Error", "message": text})
    assert detail.startswith("exit code 1: ...")
    assert len(detail) < 700
    assert termination_detail({"exitCode": 2, "signal": 9}) == "exit code 2 (signal 9)"


def test_first_problem_prefers_the_newest_live_pod() -> None:
    old = pod(containers=[cs(state=EXIT_3)], created="2026-12-01T10:00:00Z")
    new = pod(containers=[cs(state=OOM)], created="2026-12-01T10:01:00Z")
    gone = pod(conditions=[UNSCHEDULABLE], created="2026-12-01T10:02:00Z", deleting=True)
    problem = first_problem([old, gone, new], restarts=False)
    assert problem is not None
    assert problem.reason == Reason.OOM_KILLED
    assert first_problem([], restarts=False) is None
