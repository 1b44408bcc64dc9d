"""What a workload's pods say went wrong, from their real status (pure).

A Job only says "failed" (or nothing at all while its pod cannot even start), and a Deployment only says
"not available"; the pods say why. `pod_problem` reads one pod's status and names the cause:

- `PodScheduled=False/Unschedulable` -> `Unschedulable` (the scheduler's message names what is missing,
  e.g. memory or nvidia.com/gpu);
- a container waiting in `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName` or `ErrImageNeverPull`
  -> `ImagePullFailed` (naming the image);
- a container waiting in `CreateContainerConfigError`/`CreateContainerError` -> `ContainerConfigError`
  (e.g. a Secret that does not exist);
- a container terminated `OOMKilled` (now, or last time for a restarting pod) -> `OOMKilled`;
- a restarting pod (Notebook, Server) whose container exited non-zero -> `CrashLoopBackOff`, and a Job's
  pod -> `ContainerFailed`, both with the exit code and the termination message.

Init containers are looked at before the main container. Messages carry no counters or back-off times,
so a pod that keeps failing the same way keeps the same message: the status is not rewritten on every
kubelet retry. The one volatile message, the kubelet's "Back-off pulling image", is replaced by the
message of the pull error it follows when the caller still has it (`previous`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from substratus_controller.constants import Reason
from substratus_controller.jsontypes import JSON

PULL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONFIG_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError"})
MESSAGE_LINES = 5
MESSAGE_CHARS = 600


@dataclass(frozen=True, slots=True)
class PodProblem:
    """Why a pod does not do its work: a condition reason and a message a user can act on."""

    reason: Reason
    message: str


def termination_detail(terminated: JSON) -> str:
    """`exit code 3: <the last lines of the termination message>` of a terminated container state."""
    code = terminated.get("exitCode")
    lines = [line.strip() for line in str(terminated.get("message") or "").splitlines() if line.strip()]
    text = "; ".join(lines[-MESSAGE_LINES:])
    if len(text) > MESSAGE_CHARS:
        text = "..." + text[-MESSAGE_CHARS:]
    signal = terminated.get("signal")
    what = f"exit code {code}" + (f" (signal {signal})" if signal else "")
    reason = terminated.get("reason")
    if reason and reason not in ("Error", "Completed"):
        what += f", {reason}"
    return f"{what}: {text}" if text else what


def _statuses(pod: JSON) -> Iterable[tuple[str, JSON]]:
    status = pod.get("status") or {}
    for kind in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(kind) or ():
            yield ("init container" if kind == "initContainerStatuses" else "container"), cs


MEMORY_HINT = "it used more memory than its limit (spec.resources.memory): raise it or use less"


def pod_problem(pod: JSON, *, restarts: bool, previous: str | None = None) -> PodProblem | None:
    """The cause that keeps `pod` from running or made it fail, or None when nothing is wrong (yet).

    `restarts`: the pod restarts its containers (restartPolicy Always: Notebooks, Servers) rather than
    failing (Jobs). `previous`: the message this object last reported for an ImagePullFailed."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or ():
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == ("PodScheduled", "False", "Unschedulable"):
            why = cond.get("message") or "no node fits"
            return PodProblem(Reason.UNSCHEDULABLE, f"Pod cannot be scheduled: {why}")
    for what, cs in _statuses(pod):
        name = cs.get("name", "?")
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        wreason = waiting.get("reason")
        if wreason in PULL_WAITING:
            image = cs.get("image") or "?"
            detail = str(waiting.get("message") or wreason)
            if wreason == "ImagePullBackOff" and previous:
                return PodProblem(Reason.IMAGE_PULL_FAILED, previous)
            return PodProblem(Reason.IMAGE_PULL_FAILED, f'{what} {name}: cannot pull image "{image}": {detail}')
        if wreason in CONFIG_WAITING:
            detail = str(waiting.get("message") or wreason)
            return PodProblem(Reason.CONTAINER_CONFIG_ERROR, f"{what} {name} cannot be created: {detail}")
        oom_before = restarts and not terminated and last.get("reason") == "OOMKilled" and not cs.get("ready")
        if terminated.get("reason") == "OOMKilled" or oom_before:
            return PodProblem(Reason.OOM_KILLED, f"{what} {name} was OOMKilled: {MEMORY_HINT}")
        failed = terminated if terminated.get("exitCode") not in (None, 0) else None
        if restarts:
            crashed = failed or (last if last.get("exitCode") not in (None, 0) and not cs.get("ready") else None)
            if crashed or wreason == "CrashLoopBackOff":
                detail = termination_detail(crashed or last) if (crashed or last) else "it keeps exiting"
                return PodProblem(Reason.CRASH_LOOP_BACK_OFF, f"{what} {name} keeps crashing ({detail})")
        elif failed:
            return PodProblem(Reason.CONTAINER_FAILED, f"{what} {name} failed with {termination_detail(failed)}")
    return None


def pod_ready(pod: JSON) -> bool:
    """Running with the `Ready` condition True."""
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    return status.get("phase") == "Running" and ready


def previous_pull_message(previous: JSON | None) -> str | None:
    """The message of the ImagePullFailed a condition reported, to keep over the kubelet's back-off."""
    if previous is not None and previous.get("reason") == Reason.IMAGE_PULL_FAILED:
        return str(previous.get("message") or "") or None
    return None


def first_problem(pods: Sequence[JSON], *, restarts: bool, previous: str | None = None) -> PodProblem | None:
    """The problem of the newest pod that has one (pods created later describe the current attempt)."""
    ordered = sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""), reverse=True)
    for pod in ordered:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        problem = pod_problem(pod, restarts=restarts, previous=previous)
        if problem is not None:
            return problem
    return None
