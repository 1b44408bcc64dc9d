"""Job-driven runs of Datasets and Models (pure planning): level-based, rerun on workload change only.

Semantics (docs/upstream-behaviour.md §2.3-2.4 with docs/decisions.md §2.2):
- A run is identified by a digest of the workload-affecting spec (image, command, env, params, resources,
  model/dataset references), carried as the Job label `substratus.ai/run`.
- Job with the current run id: Complete -> `Complete=True/JobComplete` (ready); Failed -> `JobFailed`
  (Event; retried only when the spec or the `substratus.ai/retry` annotation changes); otherwise
  `JobNotComplete`, or `SpecChanged` while a re-run is in progress.
- Job with another run id: the spec changed -> delete it (foreground) and report `SpecChanged`; the new Job
  is created once the old one is gone.
- No Job: if the object was completed at this generation (its Job was cleaned up), it stays ready: ready
  objects are never re-run for any other reason than a workload change. Otherwise create the Job.
- The run's pods say why (status/pods.py): a failed Job reports its newest failed pod's exit code and
  termination message (`JobFailed`, or `OOMKilled`); a Job whose pod cannot start reports that at once
  (`ImagePullFailed`, `Unschedulable`, `ContainerConfigError`) instead of waiting forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from substratus_controller.api.v1.kinds import Dataset, Model
from substratus_controller.constants import LABEL_RERUN, LABEL_RUN, ConditionType, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.resource import Resource
from substratus_controller.runtime.stamp import digest
from substratus_controller.status.conditions import Cond, find
from substratus_controller.status.pods import first_problem, previous_pull_message

from .build import STUCK_REASONS, job_condition, retry_requested, retry_token, with_retry_label

RUN_LABEL = LABEL_RUN
RERUN_LABEL = LABEL_RERUN
RETRY_HINT = "change the spec or set the substratus.ai/retry annotation to retry"


@dataclass
class RunPlan:
    condition: Cond
    apply: list[tuple[Resource, JSON]] = field(default_factory=list)
    delete: list[tuple[Resource, JSON]] = field(default_factory=list)


def run_id(obj: Dataset | Model) -> str:
    """The digest of the spec fields that affect what the workload does."""
    spec = obj.spec.to_api()
    keys = ("image", "command", "env", "params", "resources", "model", "dataset")
    return digest({k: spec.get(k) for k in keys})[:16]


def _labelled(job: JSON, labels: dict[str, str]) -> JSON:
    meta = job["metadata"]
    return {**job, "metadata": {**meta, "labels": {**meta.get("labels", {}), **labels}}}


def plan_run(
    obj: Dataset | Model, raw: JSON, *, job: JSON | None, desired: JSON, what: str, rid: str, pods: Sequence[JSON] = ()
) -> RunPlan:
    """`desired` is the rendered Job for run `rid`; `job` the cached one (or None); `pods` the object's run
    pods (any run: only those of `rid` count); `what` names the Job in messages."""
    generation = obj.metadata.generation
    conditions = (raw.get("status") or {}).get("conditions")
    previous = find(conditions, ConditionType.COMPLETE)
    waiting = f"Waiting for {what} Job to complete"
    if job is not None:
        labels = job["metadata"].get("labels") or {}
        rerun = labels.get(RERUN_LABEL) == "true"
        if job["metadata"].get("deletionTimestamp"):
            return RunPlan(Cond(ConditionType.COMPLETE, False, Reason.SPEC_CHANGED,
                                f"Spec changed; waiting for the previous {what} Job to be deleted"))  # fmt: skip
        if labels.get(RUN_LABEL) != rid:
            return RunPlan(
                Cond(ConditionType.COMPLETE, False, Reason.SPEC_CHANGED, f"Spec changed; replacing the {what} Job"),
                delete=[(k8s.JOBS, job)],
            )
        if job_condition(job, "Complete"):
            return RunPlan(Cond(ConditionType.COMPLETE, True, Reason.JOB_COMPLETE, f"The {what} Job completed"))
        failed = job_condition(job, "Failed")
        if failed and retry_requested(job, retry_token(obj)):
            return RunPlan(
                Cond(ConditionType.COMPLETE, False, Reason.JOB_NOT_COMPLETE, f"Retrying the {what} Job"),
                delete=[(k8s.JOBS, job)],
            )
        run_pods = [p for p in pods if (p["metadata"].get("labels") or {}).get(RUN_LABEL) == rid]
        problem = first_problem(run_pods, restarts=False, previous=previous_pull_message(previous))
        if failed:
            oom = problem is not None and problem.reason == Reason.OOM_KILLED
            reason = Reason.OOM_KILLED if oom else Reason.JOB_FAILED
            detail = problem.message if problem is not None else failed.get("message") or failed.get("reason")
            return RunPlan(Cond(ConditionType.COMPLETE, False, reason,
                                f"The {what} Job failed: {detail or 'failed'}; {RETRY_HINT}"))  # fmt: skip
        if problem is not None and problem.reason in STUCK_REASONS:
            return RunPlan(Cond(ConditionType.COMPLETE, False, problem.reason, problem.message))
        if problem is not None:  # an earlier attempt failed; the Job retries (backoffLimit) or is about to fail
            message = f"A {what} Pod failed ({problem.message}); waiting for the Job to retry or fail"
            return RunPlan(Cond(ConditionType.COMPLETE, False, Reason.JOB_NOT_COMPLETE, message))
        if rerun:
            return RunPlan(
                Cond(
                    ConditionType.COMPLETE,
                    False,
                    Reason.SPEC_CHANGED,
                    f"Spec changed; {waiting[0].lower()}{waiting[1:]}",
                )
            )
        return RunPlan(Cond(ConditionType.COMPLETE, False, Reason.JOB_NOT_COMPLETE, waiting))
    status = raw.get("status") or {}
    if (
        status.get("ready")
        and previous is not None
        and previous.get("status") == "True"
        and previous.get("observedGeneration") == generation
    ):
        return RunPlan(Cond(ConditionType.COMPLETE, True, Reason.JOB_COMPLETE, f"The {what} Job completed"))
    rerun = previous is not None and (previous.get("status") == "True" or previous.get("reason") == Reason.SPEC_CHANGED)
    labels = {RUN_LABEL: rid, **({RERUN_LABEL: "true"} if rerun else {})}
    job_body = with_retry_label(_labelled(desired, labels), retry_token(obj))
    reason = Reason.SPEC_CHANGED if rerun else Reason.JOB_NOT_COMPLETE
    message = f"Spec changed; {waiting[0].lower()}{waiting[1:]}" if rerun else waiting
    return RunPlan(Cond(ConditionType.COMPLETE, False, reason, message), apply=[(k8s.JOBS, job_body)])
