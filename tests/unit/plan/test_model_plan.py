"""plan_model as a table: from a Model, its builder and modeller Jobs, its pods, its base Model and Dataset to
the Plan.

Specifies the build (none, git, upload, no registry) x run (no Job, running, Complete, Failed, another run's
Job, a Job being deleted, completed earlier) x gate (base Model and Dataset missing, not ready, ready) matrix:
the Complete/Built/Uploaded conditions and Ready, which children are applied and deleted, whether the
artifact prefix is prepared, spec.image set, an upload URL signed, and the requeue. The dependencies gate the
start of a run only: the ServiceAccount and params ConfigMap are applied while the Job waits, and a running
or finished run is not stopped by a dependency that went away.
"""

from __future__ import annotations

from typing import Any

import pytest

from substratus_controller.constants import Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import ModelObservation, plan_model
from substratus_controller.render.context import RenderContext
from substratus_controller.runtime import resources as k8s

from .builders import (
    CTX,
    GIT,
    GKE_CTX,
    MD5,
    NO_REGISTRY_CTX,
    NOW,
    UNSUPPORTED_GPU,
    UPLOAD,
    Row,
    Summary,
    build_job,
    build_pod,
    check,
    completed_status,
    dep,
    obj,
    rng,
    rows,
    run_job,
    run_pod,
    target,
    uploaded_status,
)

M = Kind.MODEL


def model(**kw: Any) -> JSON:
    return obj(M, "m", **kw)


def seen(raw: JSON, **kw: Any) -> ModelObservation:
    return ModelObservation(obj=raw, **kw)


PLAIN = model()
TRAIN = model(model="base", dataset="data")  # needs a base Model and a Dataset
GIT_PENDING = model(image=None, git=GIT)
UPLOADING = model(image=None, upload=UPLOAD)
BASE, DATA = dep(Kind.MODEL, "base"), dep(Kind.DATASET, "data")
BASE_NOT_READY, DATA_NOT_READY = dep(Kind.MODEL, "base", ready=False), dep(Kind.DATASET, "data", ready=False)
RUN = {"ServiceAccount/substratus-modeller", "ConfigMap/m-model-params"}
JOB = "Job/m-modeller"
BUILD = {"ServiceAccount/substratus-container-builder", "Job/m-model-bld"}
OTHER_RUN = "0" * 16

NOT_COMPLETE = ("Complete", "False", "JobNotComplete")
COMPLETE = ("Complete", "True", "JobComplete")
SPEC_CHANGED = ("Complete", "False", "SpecChanged")
INVALID = ("Complete", "False", "InvalidSpec")
BUILDING = ("False", "JobNotComplete")
BUILT = ("True", "JobComplete")
STARTS: Summary = {"main": NOT_COMPLETE, "ready": False, "apply": RUN | {JOB}, "prepare": True}


def gated(reason: str) -> Summary:
    """A run that may not start: Complete=False/<reason>, no Job, nothing to prepare, the SA and params kept."""
    return {"main": ("Complete", "False", reason), "ready": False, "apply": RUN}


TABLE: list[Row] = [
    # build
    Row("no-build/no-job", seen(PLAIN), STARTS),
    Row("git/no-job", seen(GIT_PENDING), {"main": None, "ready": False, "built": BUILDING, "apply": BUILD,
                                          "new_image": True}),
    Row("git/job-running", seen(GIT_PENDING, build_job=build_job(GIT_PENDING)),
        {"main": None, "ready": False, "built": BUILDING}),
    Row("git/job-complete", seen(GIT_PENDING, build_job=build_job(GIT_PENDING, "Complete")),
        {"main": None, "ready": False, "built": BUILT, "spec_image": target(GIT_PENDING)}),
    Row("git/job-failed", seen(GIT_PENDING, build_job=build_job(GIT_PENDING, "Failed"),
                               pods=(build_pod(GIT_PENDING, "failed"),)),
        {"main": None, "ready": False, "built": ("False", "BuildFailed"), "message": "substratus.ai/retry"}),
    Row("git/built-with-deps-missing", seen(model(image=target(GIT_PENDING), git=GIT, model="base")),
        {**gated("BaseModelNotFound"), "built": BUILT}),
    Row("upload/awaiting", seen(UPLOADING),
        {"main": None, "ready": False, "uploaded": ("False", "AwaitingUpload"), "sign_upload": True,
         "requeue": True}),
    Row("upload/found", seen(UPLOADING, stored_md5=MD5),
        {"main": None, "ready": False, "uploaded": ("True", "UploadFound"), "built": BUILDING, "apply": BUILD,
         "new_image": True}),
    Row("upload/built-new-request", seen(model(image=target(UPLOADING), upload={**UPLOAD, "requestID": "r2"},
                                               status=uploaded_status("r1"))),
        {**STARTS, "uploaded": ("True", "UploadFound"), "built": BUILT}),
    Row("upload/job-failed-new-request", seen(model(image=None, upload={**UPLOAD, "requestID": "r2"},
                                                    status=uploaded_status("r1")),
                                              build_job=build_job(UPLOADING, "Failed"), stored_md5=MD5),
        {"main": None, "ready": False, "uploaded": ("True", "UploadFound"), "built": BUILDING,
         "delete": {"Job/m-model-bld"}}),
    Row("no-registry", seen(GIT_PENDING), {"main": None, "ready": False, "built": ("False", "RegistryNotConfigured")},
        NO_REGISTRY_CTX),
    Row("no-registry/upload-not-awaited", seen(UPLOADING),
        {"main": None, "ready": False, "built": ("False", "RegistryNotConfigured")}, NO_REGISTRY_CTX),
    # run
    Row("run/job-running", seen(PLAIN, job=run_job(PLAIN)), {"main": NOT_COMPLETE, "ready": False, "apply": RUN}),
    Row("run/job-complete", seen(PLAIN, job=run_job(PLAIN, "Complete")), {"main": COMPLETE, "ready": True,
                                                                           "apply": RUN}),
    Row("run/job-failed", seen(PLAIN, job=run_job(PLAIN, "Failed"), pods=(run_pod(PLAIN, "failed"),)),
        {"main": ("Complete", "False", "JobFailed"), "ready": False, "apply": RUN, "message": "modeller Job failed"}),
    Row("run/job-failed-oom", seen(PLAIN, job=run_job(PLAIN, "Failed"), pods=(run_pod(PLAIN, "oom"),)),
        {"main": ("Complete", "False", "OOMKilled"), "ready": False, "apply": RUN, "message": "spec.resources"}),
    Row("run/pod-pull-back-off", seen(PLAIN, job=run_job(PLAIN), pods=(run_pod(PLAIN, "pull"),)),
        {"main": ("Complete", "False", "ImagePullFailed"), "ready": False, "apply": RUN}),
    Row("run/other-run-id", seen(PLAIN, job=run_job(PLAIN, "Failed", rid=OTHER_RUN)),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN, "delete": {JOB}}),
    Row("run/job-deleting", seen(PLAIN, job=run_job(PLAIN, "Complete", rid=OTHER_RUN, deleting=True)),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN}),
    Row("run/completed-earlier", seen(model(status=completed_status(1))), {"main": COMPLETE, "ready": True,
                                                                            "apply": RUN}),
    # gate
    Row("gate/base-missing", seen(TRAIN, dataset=DATA), gated("BaseModelNotFound")),
    Row("gate/base-not-ready", seen(TRAIN, base_model=BASE_NOT_READY, dataset=DATA), gated("BaseModelNotReady")),
    Row("gate/both-missing", seen(TRAIN), {**gated("BaseModelNotFound"), "message": "Base model base not found"}),
    Row("gate/dataset-missing", seen(TRAIN, base_model=BASE), gated("DatasetNotFound")),
    Row("gate/dataset-not-ready", seen(TRAIN, base_model=BASE, dataset=DATA_NOT_READY), gated("DatasetNotReady")),
    Row("gate/both-ready", seen(TRAIN, base_model=BASE, dataset=DATA), STARTS),
    Row("gate/only-dataset-named", seen(model(dataset="data"), dataset=DATA), STARTS),
    Row("gate/base-missing-job-running", seen(TRAIN, job=run_job(TRAIN)),
        {"main": NOT_COMPLETE, "ready": False, "apply": RUN}),
    Row("gate/base-missing-job-complete", seen(TRAIN, job=run_job(TRAIN, "Complete")),
        {"main": COMPLETE, "ready": True, "apply": RUN}),
    Row("gate/base-missing-completed-earlier", seen(model(model="base", dataset="data", status=completed_status(1))),
        {"main": COMPLETE, "ready": True, "apply": RUN}),
    Row("gate/base-missing-spec-changed", seen(TRAIN, job=run_job(TRAIN, "Complete", rid=OTHER_RUN)),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN, "delete": {JOB}}),
    Row("gate/base-missing-rerun", seen(model(model="base", dataset="data", generation=2, status=completed_status(1)),
                                        dataset=DATA),
        gated("BaseModelNotFound")),
    Row("gate/base-missing-while-building", seen(model(image=None, git=GIT, model="base")),
        {"main": None, "ready": False, "built": BUILDING, "apply": BUILD, "new_image": True}),
    # invalid
    Row("invalid/schema", seen(model(dataset="Not_A_Name")), {"main": INVALID, "ready": False, "message": "dataset"}),
    Row("invalid/no-image-no-build", seen(model(image=None)), {"main": INVALID, "ready": False}),
    Row("invalid/unsupported-gpu", seen(model(resources=UNSUPPORTED_GPU)),
        {"main": ("Complete", "False", "UnsupportedGPU"), "ready": False}, GKE_CTX),
    Row("invalid/unsupported-gpu-deps-missing", seen(model(model="base", resources=UNSUPPORTED_GPU)),
        {"main": ("Complete", "False", "UnsupportedGPU"), "ready": False}, GKE_CTX),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want", "ctx"), rows(TABLE))
def test_model_plan(seen: ModelObservation, want: Summary, ctx: RenderContext) -> None:
    check(plan_model(seen, ctx=ctx, now=NOW, rng=rng()), M, want)


def test_the_modeller_never_mounts_what_its_dependencies_status_claims() -> None:
    """Security model (README): a dependency's status.artifacts.url is not a trusted input (anyone who may patch the
    status could mount /etc of the node or another tenant's prefix); the driver's URLs are mounted."""
    base = dep(Kind.MODEL, "base", url="file:///etc")
    data = dep(Kind.DATASET, "data", url="file:///srv/another-tenant")
    plan = plan_model(seen(TRAIN, base_model=base, dataset=data), ctx=CTX, now=NOW, rng=rng())
    (job,) = [body for res, body in plan.apply if res == k8s.JOBS]
    paths = {v["hostPath"]["path"] for v in job["spec"]["template"]["spec"]["volumes"] if "hostPath" in v}
    assert not {"/etc", "/srv/another-tenant"} & paths
    ns = TRAIN["metadata"]["namespace"]
    computed = {CTX.cloud.artifact_url(k, ns, n).path for k, n in ((Kind.MODEL, "base"), (Kind.DATASET, "data"))}
    assert computed <= paths
