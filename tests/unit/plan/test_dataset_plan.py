"""plan_dataset as a table: from a Dataset, its builder Job, its loader Job and their pods to the Plan.

Specifies, for the build (none, git, upload, no registry) and the run (no Job, running, Complete, Failed,
another run's Job, a Job being deleted, completed earlier): the Complete/Built/Uploaded conditions and Ready,
which children are applied, created and deleted, and whether the plan asks to be requeued, to prepare the
artifact prefix, to set spec.image or to sign an upload URL. Invalid specs report InvalidSpec (or
UnsupportedGPU) and touch no child.
"""

from __future__ import annotations

from typing import Any

import pytest

from substratus_controller.constants import ANNOTATION_RETRY, LABEL_RERUN, LABEL_RUN, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import DatasetObservation, plan_dataset
from substratus_controller.render.context import RenderContext
from substratus_controller.runtime import resources as k8s

from .builders import (
    CTX,
    EARLIER,
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
    build_label,
    build_pod,
    check,
    completed_status,
    job,
    obj,
    rng,
    rows,
    run_job,
    run_label,
    run_pod,
    target,
)

D = Kind.DATASET


def ds(**kw: Any) -> JSON:
    return obj(D, "d", **kw)


def seen(raw: JSON, **kw: Any) -> DatasetObservation:
    return DatasetObservation(obj=raw, **kw)


PLAIN = ds()
GIT_PENDING = ds(image=None, git=GIT)
UPLOADING = ds(image=None, upload=UPLOAD)
RETRY = {ANNOTATION_RETRY: "1"}
RUN = {"ServiceAccount/substratus-data-loader", "ConfigMap/d-dataset-params"}
JOB = "Job/d-data-loader"
BUILD = {"ServiceAccount/substratus-container-builder", "Job/d-dataset-bld"}
BUILD_JOB = "Job/d-dataset-bld"
LATER = "2026-01-01T00:02:00Z"
OUTSTANDING = {"buildUpload": {"requestID": "r1", "signedURL": "https://upload.example/x", "expiration": LATER}}
EXPIRED = {"buildUpload": {"requestID": "r1", "signedURL": "https://upload.example/x", "expiration": EARLIER}}

NOT_COMPLETE = ("Complete", "False", "JobNotComplete")
COMPLETE = ("Complete", "True", "JobComplete")
SPEC_CHANGED = ("Complete", "False", "SpecChanged")
INVALID = ("Complete", "False", "InvalidSpec")
BUILDING = ("False", "JobNotComplete")
BUILT = ("True", "JobComplete")

TABLE: list[Row] = [
    # build x (no run yet)
    Row("no-build/no-job", seen(PLAIN), {"main": NOT_COMPLETE, "ready": False, "apply": RUN | {JOB}, "prepare": True}),
    Row("git/no-job", seen(GIT_PENDING), {"main": None, "ready": False, "built": BUILDING, "apply": BUILD,
                                          "new_image": True}),
    Row("git/job-running", seen(GIT_PENDING, build_job=build_job(GIT_PENDING)),
        {"main": None, "ready": False, "built": BUILDING}),
    Row("git/job-complete", seen(GIT_PENDING, build_job=build_job(GIT_PENDING, "Complete")),
        {"main": None, "ready": False, "built": BUILT, "spec_image": target(GIT_PENDING)}),
    Row("git/job-failed", seen(GIT_PENDING, build_job=build_job(GIT_PENDING, "Failed"),
                               pods=(build_pod(GIT_PENDING, "failed"),)),
        {"main": None, "ready": False, "built": ("False", "BuildFailed"), "message": "loader: no such repo"}),
    Row("git/job-failed-retry", seen(ds(image=None, git=GIT, annotations=RETRY),
                                     build_job=build_job(GIT_PENDING, "Failed")),
        {"main": None, "ready": False, "built": BUILDING, "delete": {BUILD_JOB}, "message": "Retrying"}),
    Row("git/builder-cannot-pull", seen(GIT_PENDING, build_job=build_job(GIT_PENDING),
                                        pods=(build_pod(GIT_PENDING, "errpull"),)),
        {"main": None, "ready": False, "built": ("False", "ImagePullFailed")}),
    Row("git/source-changed", seen(GIT_PENDING, build_job=build_job(GIT_PENDING, "Complete", bid="0" * 16)),
        {"main": None, "ready": False, "built": BUILDING, "delete": {BUILD_JOB}}),
    Row("git/old-job-deleting", seen(GIT_PENDING, build_job=build_job(GIT_PENDING, bid="0" * 16, deleting=True)),
        {"main": None, "ready": False, "built": BUILDING}),
    Row("git/built-job-gone", seen(ds(image=target(GIT_PENDING), git=GIT)),
        {"main": NOT_COMPLETE, "ready": False, "built": BUILT, "apply": RUN | {JOB}, "prepare": True}),
    Row("git/rebuild-while-complete", seen(ds(git=GIT), build_job=build_job(ds(git=GIT)), job=run_job(ds(git=GIT),
                                           "Complete")),
        {"main": COMPLETE, "ready": False, "built": BUILDING, "apply": RUN}),
    Row("git/rebuilt-while-complete", seen(ds(git=GIT), build_job=build_job(ds(git=GIT), "Complete"),
                                           job=run_job(ds(git=GIT), "Complete")),
        {"main": COMPLETE, "ready": True, "built": BUILT, "apply": RUN, "spec_image": target(GIT_PENDING)}),
    Row("upload/awaiting", seen(UPLOADING),
        {"main": None, "ready": False, "uploaded": ("False", "AwaitingUpload"), "sign_upload": True,
         "requeue": True}),
    Row("upload/url-outstanding", seen(ds(image=None, upload=UPLOAD, status=OUTSTANDING)),
        {"main": None, "ready": False, "uploaded": ("False", "AwaitingUpload"), "requeue": True}),
    Row("upload/url-expired", seen(ds(image=None, upload=UPLOAD, status=EXPIRED)),
        {"main": None, "ready": False, "uploaded": ("False", "AwaitingUpload"), "message": "expired"}),
    Row("upload/found", seen(UPLOADING, stored_md5=MD5),
        {"main": None, "ready": False, "uploaded": ("True", "UploadFound"), "built": BUILDING, "apply": BUILD,
         "new_image": True}),
    Row("no-registry", seen(GIT_PENDING), {"main": None, "ready": False, "built": ("False", "RegistryNotConfigured"),
                                           "message": "local-registry-hosting"}, NO_REGISTRY_CTX),
    Row("no-registry/with-image", seen(ds(git=GIT)),
        {"main": NOT_COMPLETE, "ready": False, "built": ("False", "RegistryNotConfigured"), "apply": RUN | {JOB},
         "prepare": True}, NO_REGISTRY_CTX),
    # run
    Row("run/job-running", seen(PLAIN, job=run_job(PLAIN)), {"main": NOT_COMPLETE, "ready": False, "apply": RUN}),
    Row("run/job-complete", seen(PLAIN, job=run_job(PLAIN, "Complete")), {"main": COMPLETE, "ready": True,
                                                                           "apply": RUN}),
    Row("run/job-failed", seen(PLAIN, job=run_job(PLAIN, "Failed"), pods=(run_pod(PLAIN, "failed"),)),
        {"main": ("Complete", "False", "JobFailed"), "ready": False, "apply": RUN,
         "message": "exit code 2: loader: no such repo"}),
    Row("run/job-failed-no-pods", seen(PLAIN, job=run_job(PLAIN, "Failed")),
        {"main": ("Complete", "False", "JobFailed"), "ready": False, "apply": RUN, "message": "backoff limit"}),
    Row("run/job-failed-oom", seen(PLAIN, job=run_job(PLAIN, "Failed"), pods=(run_pod(PLAIN, "oom"),)),
        {"main": ("Complete", "False", "OOMKilled"), "ready": False, "apply": RUN}),
    Row("run/job-failed-retry", seen(ds(annotations=RETRY), job=run_job(PLAIN, "Failed")),
        {"main": NOT_COMPLETE, "ready": False, "apply": RUN, "delete": {JOB}, "message": "Retrying"}),
    Row("run/pod-cannot-pull", seen(PLAIN, job=run_job(PLAIN), pods=(run_pod(PLAIN, "errpull"),)),
        {"main": ("Complete", "False", "ImagePullFailed"), "ready": False, "apply": RUN}),
    Row("run/pod-unschedulable", seen(PLAIN, job=run_job(PLAIN), pods=(run_pod(PLAIN, "unschedulable"),)),
        {"main": ("Complete", "False", "Unschedulable"), "ready": False, "apply": RUN}),
    Row("run/earlier-attempt-failed", seen(PLAIN, job=run_job(PLAIN), pods=(run_pod(PLAIN, "failed"),)),
        {"main": NOT_COMPLETE, "ready": False, "apply": RUN, "message": "waiting for the Job to retry"}),
    Row("run/other-runs-pod-failed", seen(PLAIN, job=run_job(PLAIN), pods=(run_pod(PLAIN, "failed", rid="0" * 16),)),
        {"main": NOT_COMPLETE, "ready": False, "apply": RUN, "message": "Waiting for data loader Job"}),
    Row("run/other-run-id", seen(PLAIN, job=run_job(PLAIN, "Complete", rid="0" * 16)),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN, "delete": {JOB}}),
    Row("run/job-deleting", seen(PLAIN, job=run_job(PLAIN, rid="0" * 16, deleting=True)),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN}),
    Row("run/rerun-job-running", seen(PLAIN, job=job("d-data-loader", {LABEL_RUN: run_label(PLAIN),
                                                                       LABEL_RERUN: "true"})),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN}),
    Row("run/completed-earlier", seen(ds(status=completed_status(1))), {"main": COMPLETE, "ready": True, "apply": RUN}),
    Row("run/completed-older-generation", seen(ds(generation=2, status=completed_status(1))),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN | {JOB}, "prepare": True}),
    # invalid
    Row("invalid/schema", seen(ds(resources={"cpu": -1})), {"main": INVALID, "ready": False, "message": "cpu"}),
    Row("invalid/params-over-a-configmap", seen(ds(params={f"p{i}": "x" * 8000 for i in range(140)})),
        {"main": INVALID, "ready": False, "message": "spec.params: params.json would be"}),
    Row("invalid/unknown-field", seen(ds(imagePullPolicy="Always")), {"main": INVALID, "ready": False}),
    Row("invalid/two-build-sources", seen(ds(image=None, build={"git": GIT, "upload": UPLOAD})),
        {"main": INVALID, "ready": False}),
    Row("invalid/no-image-no-build", seen(ds(image=None)),
        {"main": INVALID, "ready": False, "message": "spec.image or spec.build must be set"}),
    Row("invalid/git-path-escapes", seen(ds(image=None, git={**GIT, "path": "../other"})),
        {"main": INVALID, "ready": False, "message": "spec.build.git.path"}),
    Row("invalid/unsupported-gpu", seen(ds(resources=UNSUPPORTED_GPU)),
        {"main": ("Complete", "False", "UnsupportedGPU"), "ready": False, "message": "nvidia-a10g"}, GKE_CTX),
    Row("invalid/unsupported-gpu-keeps-build", seen(ds(git=GIT, resources=UNSUPPORTED_GPU)),
        {"main": ("Complete", "False", "UnsupportedGPU"), "ready": False, "built": BUILDING, "apply": BUILD,
         "new_image": True}, GKE_CTX),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want", "ctx"), rows(TABLE))
def test_dataset_plan(seen: DatasetObservation, want: Summary, ctx: RenderContext) -> None:
    check(plan_dataset(seen, ctx=ctx, now=NOW, rng=rng()), D, want)


def test_the_loader_job_carries_the_run_id() -> None:
    plan = plan_dataset(seen(PLAIN), ctx=CTX, now=NOW, rng=rng())
    jobs = [body for res, body in plan.apply if res == k8s.JOBS]
    assert [j["metadata"]["labels"][LABEL_RUN] for j in jobs] == [run_label(PLAIN)]
    assert LABEL_RERUN not in jobs[0]["metadata"]["labels"]


def test_a_rerun_job_is_labelled_as_a_rerun() -> None:
    plan = plan_dataset(seen(ds(generation=2, status=completed_status(1))), ctx=CTX, now=NOW, rng=rng())
    jobs = [body for res, body in plan.apply if res == k8s.JOBS]
    assert jobs[0]["metadata"]["labels"][LABEL_RERUN] == "true"


def test_the_builder_job_carries_the_build_id() -> None:
    plan = plan_dataset(seen(GIT_PENDING), ctx=CTX, now=NOW, rng=rng())
    jobs = [body for res, body in plan.apply if res == k8s.JOBS]
    assert [j["metadata"]["labels"]["substratus.ai/build"] for j in jobs] == [build_label(GIT_PENDING)]
    assert plan.new_image == target(GIT_PENDING)
