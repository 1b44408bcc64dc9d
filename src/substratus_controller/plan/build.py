"""Image builds (pure planning), shared by the four kinds.

Semantics (docs/upstream-behaviour.md §3 with docs/decisions.md §2.1):
- The target image is `<registry>/<cluster>-<kind>-<ns>.<name>:<tag>` (tag: git tag > branch > "latest",
  or the upload md5). A build Job `<name>-<kind>-bld` labelled with a build id (a digest of the build spec,
  the target and the retry annotation) produces it.
- No build Job and `spec.image == target`: built (nothing to do, even if the Job was cleaned up).
- A Job with another build id (a new tag/branch/md5/requestID, or a retry after failure) is deleted first;
  the fresh Job is created once it is gone.
- Job Complete: `Built=True/JobComplete` and, if needed, `spec.image` is set to the target.
  Job Failed: `Built=False/BuildFailed` with the failed builder container's termination message (its log
  tail: the failing Dockerfile step, the registry or git server it could not reach) from the Job's newest
  pod; an Event, no retry until the build spec, the upload's `requestID` or `substratus.ai/retry` changes
  (the retry token: it only matters for a failed Job; a good image is never rebuilt for it, and the same
  md5 under a new requestID finds the image built and needs neither upload nor build).
  Otherwise `Built=False/JobNotComplete`, or the reason of a builder pod that cannot start
  (ImagePullFailed, Unschedulable, ContainerConfigError: status/pods.py) so that it does not wait silently.
- No usable registry (cloud/registry_hosting.py): `Built=False/RegistryNotConfigured` naming what to set;
  no Job, no retry (the setting changes only with a restart).
- The workload may run with whatever `spec.image` holds (a rebuild does not stop a running Server).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from substratus_controller.api.v1.kinds import Dataset, Model, Notebook, Server
from substratus_controller.api.v1.types import BuildUpload
from substratus_controller.cloud.base import BucketURL, RegistryNotConfiguredError
from substratus_controller.constants import (
    ANNOTATION_RETRY,
    LABEL_BUILD,
    LABEL_RETRY,
    SA_BUILDER,
    ConditionType,
    Kind,
    Reason,
)
from substratus_controller.jsontypes import JSON
from substratus_controller.render.build import build_job, target_image
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import build_job_name
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.resource import Resource
from substratus_controller.runtime.stamp import digest
from substratus_controller.status.conditions import Cond
from substratus_controller.status.pods import first_problem

from .upload import plan_upload

BUILD_LABEL = LABEL_BUILD
RETRY_LABEL = LABEL_RETRY
AnyKind = Dataset | Model | Notebook | Server


@dataclass
class BuildPlan:
    """The build's share of a Plan."""

    condition: Cond | None = None
    service_accounts: list[str] = field(default_factory=list)
    apply: list[tuple[Resource, JSON]] = field(default_factory=list)
    delete: list[tuple[Resource, JSON]] = field(default_factory=list)
    spec_image: str | None = None
    upload_condition: Cond | None = None
    upload_status: JSON | None = None  # the new status.buildUpload
    sign_upload: BucketURL | None = None  # sign a URL for this object, into upload_status.signedURL
    new_image: str | None = None  # a build Job is being created for this image (the registry may need a repo)
    requeue_after: float | None = None

    @property
    def blockers(self) -> list[Cond]:
        """The build's conditions, in order, for the Ready computation."""
        return [c for c in (self.upload_condition, self.condition) if c is not None]

    @property
    def status(self) -> JSON:
        """The build's share of the status."""
        return {"buildUpload": self.upload_status} if self.upload_status else {}


def job_condition(job: JSON, ctype: str) -> JSON | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype and c.get("status") == "True":
            return dict(c)
    return None


def build_id(obj: AnyKind, target: str) -> str:
    """What identifies a build: its source (git ref, or uploaded content) and target; not the requestID."""
    build = obj.spec.build
    assert build is not None
    source = build.git.to_api() if build.git else {"md5": build.upload.md5_checksum.lower() if build.upload else ""}
    return digest({"source": source, "target": target})[:16]


def needs_storage_check(obj: AnyKind, kind: Kind, ctx: RenderContext) -> bool:
    """Whether planning this object's build needs to know what storage holds (an upload not yet built)."""
    build = obj.spec.build
    if build is None or build.upload is None:
        return False
    try:
        return obj.spec.image != target_image(obj, kind, ctx.cloud)
    except RegistryNotConfiguredError:
        return False


def retry_token(obj: AnyKind) -> str:
    """A label-safe digest of what asks to retry a failed build: the `substratus.ai/retry` annotation and
    the upload's requestID ("" when neither is set)."""
    value = obj.metadata.annotations.get(ANNOTATION_RETRY)
    upload = obj.spec.build.upload if obj.spec.build is not None else None
    request = upload.request_id if upload is not None else None
    if not value and not request:
        return ""
    return digest({"retry": value, **({"request": request} if request else {})})[:16]


# A builder pod that cannot even start: the Job neither fails nor completes, so say why.
STUCK_REASONS = frozenset({Reason.IMAGE_PULL_FAILED, Reason.UNSCHEDULABLE, Reason.CONTAINER_CONFIG_ERROR})


def build_pods(pods: list[JSON], bid: str) -> list[JSON]:
    """The pods of the build `bid` among an object's pods."""
    return [p for p in pods if (p["metadata"].get("labels") or {}).get(BUILD_LABEL) == bid]


def with_retry_label(job: JSON, token: str) -> JSON:
    """`job` (Job and pod template) labelled with the retry token it was created for."""
    if not token:
        return job
    meta = job["metadata"]
    return {**job, "metadata": {**meta, "labels": {**meta.get("labels", {}), RETRY_LABEL: token}}}


def retry_requested(job: JSON, token: str) -> bool:
    """Whether the retry annotation changed since `job` was created (only consulted for failed Jobs)."""
    return bool((job["metadata"].get("labels") or {}).get(RETRY_LABEL, "") != token)


def upload_share(plan: BuildPlan, upload: BuildUpload, stored_at: BucketURL, *, built: bool,
                 raw_status: JSON | None, stored_md5: str | None, now: str) -> bool:  # fmt: skip
    """Fill in the upload's condition and status; whether the build may go on (the context is uploaded).

    `built`: the image is (being) built from this very content, so the upload was verified before;
    `stored_at`: where the context is stored (the object a signed URL is for)."""
    previous = (raw_status or {}).get("buildUpload")
    if built:
        md5 = upload.md5_checksum.lower()
        message = f"Upload received with matching md5 checksum: {md5}"
        plan.upload_condition = Cond(ConditionType.UPLOADED, True, Reason.UPLOAD_FOUND, message)
        plan.upload_status = dict(previous) if previous else None  # a copy: the plan never aliases the cache
        return True
    handshake = plan_upload(upload, previous, stored_md5=stored_md5, now=now)
    plan.upload_condition = handshake.condition
    plan.upload_status = handshake.status
    plan.requeue_after = handshake.requeue_after
    if handshake.sign:
        plan.sign_upload = stored_at
    return handshake.uploaded


def plan_build(obj: AnyKind, kind: Kind, ctx: RenderContext, *, job: JSON | None, raw_status: JSON | None = None,
               stored_md5: str | None = None, now: str = "", pods: list[JSON] | None = None) -> BuildPlan:  # fmt: skip
    """The build's conditions and children for `obj` given its cached build Job (or None).

    For upload builds, `stored_md5` is what storage holds (see needs_storage_check) and `raw_status` the
    object's current status (for the handshake's state). `pods`: the object's cached pods (any role)."""
    if obj.spec.build is None:
        return BuildPlan()
    meta = obj.metadata
    try:
        target = target_image(obj, kind, ctx.cloud)
    except RegistryNotConfiguredError as exc:
        return BuildPlan(
            condition=Cond(ConditionType.BUILT, False, Reason.REGISTRY_NOT_CONFIGURED, f"Cannot build: {exc}")
        )
    bid = build_id(obj, target)
    retry = retry_token(obj)
    name = build_job_name(kind, meta.name)
    plan = BuildPlan()
    upload = obj.spec.build.upload
    if upload is not None:
        same = job is not None and (job["metadata"].get("labels") or {}).get(BUILD_LABEL) == bid
        stored_at = ctx.cloud.upload_url(kind, meta.namespace, meta.name, upload.md5_checksum.lower())
        if not upload_share(plan, upload, stored_at, built=obj.spec.image == target or same,
                            raw_status=raw_status, stored_md5=stored_md5, now=now):  # fmt: skip
            return plan
    if job is not None and job["metadata"].get("deletionTimestamp"):
        plan.condition = Cond(ConditionType.BUILT, False, Reason.JOB_NOT_COMPLETE,
                              f"Waiting for the previous builder Job to be deleted: {name}")  # fmt: skip
        return plan
    if job is not None and (job["metadata"].get("labels") or {}).get(BUILD_LABEL) != bid:
        plan.delete.append((k8s.JOBS, job))
        plan.condition = Cond(
            ConditionType.BUILT, False, Reason.JOB_NOT_COMPLETE, f"Build source changed; replacing builder Job {name}"
        )
        return plan
    if job is None:
        if obj.spec.image == target:
            plan.condition = Cond(ConditionType.BUILT, True, Reason.JOB_COMPLETE, f"Image built: {target}")
            return plan
        plan.service_accounts.append(SA_BUILDER)
        plan.new_image = target
        plan.apply.append((k8s.JOBS, with_retry_label(build_job(obj, kind, ctx, target=target, build_id=bid), retry)))
        plan.condition = Cond(
            ConditionType.BUILT, False, Reason.JOB_NOT_COMPLETE, f"Waiting for builder Job to complete: {name}"
        )
        return plan
    if job_condition(job, "Complete"):
        plan.condition = Cond(ConditionType.BUILT, True, Reason.JOB_COMPLETE, f"Builder Job completed: {name}")
        if obj.spec.image != target:
            plan.spec_image = target
        return plan
    failed = job_condition(job, "Failed")
    if failed and retry_requested(job, retry):
        plan.delete.append((k8s.JOBS, job))
        plan.condition = Cond(ConditionType.BUILT, False, Reason.JOB_NOT_COMPLETE, f"Retrying builder Job {name}")
        return plan
    mine = build_pods(pods or [], bid)
    if failed:
        problem = first_problem(mine, restarts=False)
        detail = problem.message if problem else failed.get("message") or failed.get("reason") or "failed"
        again = "a new upload requestID (kubectl applybuild), " if upload is not None else ""
        plan.condition = Cond(ConditionType.BUILT, False, Reason.BUILD_FAILED,
                              f"Builder Job {name} failed: {detail}; change the build, or set {again}the "
                              f"{ANNOTATION_RETRY} annotation to retry")  # fmt: skip
        return plan
    stuck = first_problem(mine, restarts=False)
    if stuck is not None and stuck.reason in STUCK_REASONS:
        plan.condition = Cond(ConditionType.BUILT, False, stuck.reason, f"Builder Job {name}: {stuck.message}")
        return plan
    plan.condition = Cond(
        ConditionType.BUILT, False, Reason.JOB_NOT_COMPLETE, f"Waiting for builder Job to complete: {name}"
    )
    return plan
