"""plan_notebook as a table: from a Notebook, its builder Job, its Pod, its Model and Dataset to the Plan.

Specifies: a Notebook without a Pod gets a token Secret under a freshly drawn name (created, never applied)
and its Pod naming it; a Pod that is up to date keeps the Secret it names and reports Serving from its
readiness or its problem (CrashLoopBackOff, ImagePullFailed, OOMKilled, Unschedulable), one whose desired spec
changed is deleted with its Secret (SpecChanged); `suspend` deletes the Pod and its Secret while the build
goes on (a Secret under the name from before nonces is left alone); the `substratus.ai/notebook-storage`
annotation adds a PVC, and a malformed one is InvalidSpec while the build's conditions are kept; the Model and
Dataset gate the start of the Pod.
"""

from __future__ import annotations

from random import Random
from typing import Any

import pytest

from substratus_controller.constants import ANNOTATION_NOTEBOOK_STORAGE, ANNOTATION_TOKEN_SECRET, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import NotebookObservation, plan_notebook
from substratus_controller.plan.prologue import new_token_nonce
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import notebook_token_secret_name
from substratus_controller.runtime import resources as k8s

from .builders import (
    CTX,
    GIT,
    GKE_CTX,
    ISOLATING_CTX,
    MD5,
    NO_REGISTRY_CTX,
    NOW,
    UNSUPPORTED_GPU,
    UPLOAD,
    Row,
    Summary,
    build_job,
    check,
    dep,
    notebook_pod,
    obj,
    rng,
    rows,
    target,
)

N = Kind.NOTEBOOK


def nb(**kw: Any) -> JSON:
    return obj(N, "nb", **kw)


def seen(raw: JSON, **kw: Any) -> NotebookObservation:
    return NotebookObservation(obj=raw, **kw)


PLAIN = nb()
GIT_PENDING = nb(image=None, git=GIT)
REBUILDING = nb(git=GIT)  # an image from an earlier build, and a build to run
WITH_DEPS = nb(model="llm", dataset="data")
MODEL, DATA = dep(Kind.MODEL, "llm"), dep(Kind.DATASET, "data")
STORAGE = nb(annotations={ANNOTATION_NOTEBOOK_STORAGE: "20Gi"})
BAD_STORAGE = {ANNOTATION_NOTEBOOK_STORAGE: "20GB"}
RUN = {"ServiceAccount/substratus-notebook", "ConfigMap/nb-notebook-params"}
POD = "Pod/nb-notebook"
PVC = "PersistentVolumeClaim/nb-notebook"
POLICY = "NetworkPolicy/nb-notebook"
SECRET = "Secret/" + notebook_token_secret_name("nb", new_token_nonce(rng()))  # the first draw of rng()
BUILD = {"ServiceAccount/substratus-container-builder", "Job/nb-notebook-bld"}

NOT_READY = ("Serving", "False", "PodNotReady")
SERVING = ("Serving", "True", "PodReady")
SUSPENDED = ("Serving", "False", "Suspended")
SPEC_CHANGED = ("Serving", "False", "SpecChanged")
INVALID = ("Serving", "False", "InvalidSpec")
BUILDING = ("False", "JobNotComplete")
BUILT = ("True", "JobComplete")
STARTS: Summary = {"main": NOT_READY, "ready": False, "apply": RUN | {POD}, "create": {SECRET}, "prepare": True}


def pod_says(reason: str) -> Summary:
    """An up-to-date Pod that is not ready for `reason`: nothing to change."""
    return {"main": ("Serving", "False", reason), "ready": False, "apply": RUN}


def legacy_pod(raw: JSON, **kw: Any) -> JSON:
    """A Pod as the controller made them before nonces: its token Secret was `<name>-notebook-token`, and no
    annotation named it."""
    pod = notebook_pod(raw, token_secret="nb-notebook-token", **kw)
    annotations = {k: v for k, v in pod["metadata"]["annotations"].items() if k != ANNOTATION_TOKEN_SECRET}
    return {**pod, "metadata": {**pod["metadata"], "annotations": annotations}}


TABLE: list[Row] = [
    # the Pod
    Row("pod/none", seen(PLAIN), {**STARTS, "message": "Waiting for the notebook Pod to start"}),
    Row("pod/ready", seen(PLAIN, pod=notebook_pod(PLAIN)), {"main": SERVING, "ready": True, "apply": RUN}),
    Row("pod/running-not-ready", seen(PLAIN, pod=notebook_pod(PLAIN, "running")),
        {**pod_says("PodNotReady"), "message": "Notebook Pod is Running"}),
    Row("pod/pending", seen(PLAIN, pod=notebook_pod(PLAIN, "pending")), pod_says("PodNotReady")),
    Row("pod/crash-loop", seen(PLAIN, pod=notebook_pod(PLAIN, "crash")),
        {**pod_says("CrashLoopBackOff"), "message": "exit code 1: Traceback: boom"}),
    Row("pod/pull-back-off", seen(PLAIN, pod=notebook_pod(PLAIN, "pull")), pod_says("ImagePullFailed")),
    Row("pod/oom-killed", seen(PLAIN, pod=notebook_pod(PLAIN, "oom")), pod_says("OOMKilled")),
    Row("pod/unschedulable", seen(PLAIN, pod=notebook_pod(PLAIN, "unschedulable")),
        {**pod_says("Unschedulable"), "message": "nvidia.com/gpu"}),
    Row("pod/image-changed", seen(PLAIN, pod=notebook_pod(nb(image="registry.example.com/other:v2"))),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN, "delete": {POD, SECRET}}),
    Row("pod/env-changed", seen(nb(env={"LOG_LEVEL": "debug"}), pod=notebook_pod(PLAIN)),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN, "delete": {POD, SECRET}}),
    Row("pod/from-before-nonces", seen(PLAIN, pod=legacy_pod(PLAIN)),  # replaced once, after an upgrade
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN, "delete": {POD}}),
    Row("pod/deleting", seen(PLAIN, pod=notebook_pod(PLAIN, deleting=True)),
        {"main": NOT_READY, "ready": False, "apply": RUN, "message": "Waiting for the old Pod to go"}),
    # the PVC
    Row("pvc/no-pod", seen(STORAGE), {**STARTS, "apply": RUN | {PVC, POD}}),
    Row("pvc/pod-ready", seen(STORAGE, pod=notebook_pod(STORAGE)), {"main": SERVING, "ready": True,
                                                                     "apply": RUN | {PVC}}),
    Row("pvc/added-to-a-running-pod", seen(STORAGE, pod=notebook_pod(PLAIN)),
        {"main": SPEC_CHANGED, "ready": False, "apply": RUN | {PVC}, "delete": {POD, SECRET}}),
    # --notebook-network-policy deny-ingress: the policy with the Pod, and kept (it is cheap) while suspended
    Row("policy/no-pod", seen(PLAIN), {**STARTS, "apply": RUN | {POLICY, POD}}, ISOLATING_CTX),
    Row("policy/pod-ready", seen(PLAIN, pod=notebook_pod(PLAIN, ctx=ISOLATING_CTX)),
        {"main": SERVING, "ready": True, "apply": RUN | {POLICY}}, ISOLATING_CTX),
    Row("policy/suspended", seen(nb(suspend=True), pod=notebook_pod(PLAIN, ctx=ISOLATING_CTX)),
        {"main": SUSPENDED, "ready": False, "delete": {POD, SECRET}}, ISOLATING_CTX),
    # suspend
    Row("suspend/pod-running", seen(nb(suspend=True), pod=notebook_pod(PLAIN)),
        {"main": SUSPENDED, "ready": False, "delete": {POD, SECRET}}),
    Row("suspend/pod-from-before-nonces", seen(nb(suspend=True), pod=legacy_pod(PLAIN)),
        {"main": SUSPENDED, "ready": False, "delete": {POD}}),  # `nb-notebook-token` may be anyone's
    Row("suspend/no-pod", seen(nb(suspend=True)), {"main": SUSPENDED, "ready": False}),
    Row("suspend/pod-deleting", seen(nb(suspend=True), pod=notebook_pod(PLAIN, deleting=True)),
        {"main": SUSPENDED, "ready": False}),
    Row("suspend/while-building", seen(nb(image=None, git=GIT, suspend=True)),
        {"main": SUSPENDED, "ready": False, "built": BUILDING, "apply": BUILD, "new_image": True}),
    Row("suspend/build-complete", seen(nb(image=None, git=GIT, suspend=True),
                                       build_job=build_job(GIT_PENDING, "Complete")),
        {"main": SUSPENDED, "ready": False, "built": BUILT, "spec_image": target(GIT_PENDING)}),
    Row("suspend/ignores-the-storage-annotation", seen(nb(suspend=True, annotations=BAD_STORAGE)),
        {"main": SUSPENDED, "ready": False}),
    Row("suspend/false", seen(nb(suspend=False)), STARTS),
    # build
    Row("build/git-no-job", seen(GIT_PENDING), {"main": None, "ready": False, "built": BUILDING, "apply": BUILD,
                                                "new_image": True}),
    Row("build/git-job-running", seen(GIT_PENDING, build_job=build_job(GIT_PENDING)),
        {"main": None, "ready": False, "built": BUILDING}),
    Row("build/git-job-complete", seen(GIT_PENDING, build_job=build_job(GIT_PENDING, "Complete")),
        {"main": None, "ready": False, "built": BUILT, "spec_image": target(GIT_PENDING)}),
    Row("build/git-job-failed", seen(GIT_PENDING, build_job=build_job(GIT_PENDING, "Failed")),
        {"main": None, "ready": False, "built": ("False", "BuildFailed")}),
    Row("build/rebuild-while-serving", seen(REBUILDING, build_job=build_job(REBUILDING), pod=notebook_pod(REBUILDING)),
        {"main": SERVING, "ready": False, "built": BUILDING, "apply": RUN}),
    Row("build/upload-awaiting", seen(nb(image=None, upload=UPLOAD)),
        {"main": None, "ready": False, "uploaded": ("False", "AwaitingUpload"), "sign_upload": True,
         "requeue": True}),
    Row("build/upload-found", seen(nb(image=None, upload=UPLOAD), stored_md5=MD5),
        {"main": None, "ready": False, "uploaded": ("True", "UploadFound"), "built": BUILDING, "apply": BUILD,
         "new_image": True}),
    Row("build/no-registry", seen(GIT_PENDING), {"main": None, "ready": False,
                                                 "built": ("False", "RegistryNotConfigured")}, NO_REGISTRY_CTX),
    # gate
    Row("gate/model-missing", seen(WITH_DEPS, dataset=DATA), {"main": ("Serving", "False", "ModelNotFound"),
                                                             "ready": False}),
    Row("gate/model-not-ready", seen(WITH_DEPS, model=dep(Kind.MODEL, "llm", ready=False), dataset=DATA),
        {"main": ("Serving", "False", "ModelNotReady"), "ready": False}),
    Row("gate/dataset-missing", seen(WITH_DEPS, model=MODEL), {"main": ("Serving", "False", "DatasetNotFound"),
                                                              "ready": False}),
    Row("gate/dataset-not-ready", seen(WITH_DEPS, model=MODEL, dataset=dep(Kind.DATASET, "data", ready=False)),
        {"main": ("Serving", "False", "DatasetNotReady"), "ready": False}),
    Row("gate/both-ready", seen(WITH_DEPS, model=MODEL, dataset=DATA), STARTS),
    Row("gate/both-ready-pod-ready", seen(WITH_DEPS, model=MODEL, dataset=DATA,
                                          pod=notebook_pod(WITH_DEPS, model=MODEL, dataset=DATA)),
        {"main": SERVING, "ready": True, "apply": RUN}),
    Row("gate/model-gone-pod-ready", seen(WITH_DEPS, dataset=DATA, pod=notebook_pod(WITH_DEPS, model=MODEL,
                                                                                    dataset=DATA)),
        {"main": SERVING, "ready": True, "apply": RUN}),  # a running Pod keeps its (computed) model mount
    # invalid
    Row("invalid/schema", seen(nb(resources={"memory": -1})), {"main": INVALID, "ready": False}),
    Row("invalid/no-image-no-build", seen(nb(image=None)), {"main": INVALID, "ready": False}),
    Row("invalid/storage-annotation", seen(nb(annotations=BAD_STORAGE)),
        {"main": INVALID, "ready": False, "message": "is not a size like 20Gi"}),
    Row("invalid/storage-annotation-newline", seen(nb(annotations={ANNOTATION_NOTEBOOK_STORAGE: "20Gi\n"})),
        {"main": INVALID, "ready": False, "message": "is not a size like 20Gi"}),
    Row("invalid/storage-annotation-keeps-build", seen(nb(git=GIT, annotations=BAD_STORAGE),
                                                       build_job=build_job(REBUILDING, "Failed")),
        {"main": INVALID, "ready": False, "built": ("False", "BuildFailed")}),
    Row("invalid/storage-annotation-keeps-building", seen(nb(git=GIT, annotations=BAD_STORAGE)),
        {"main": INVALID, "ready": False, "built": BUILDING, "apply": BUILD, "new_image": True,
         "message": "Waiting for builder Job to complete"}),
    Row("invalid/storage-annotation-while-building", seen(nb(image=None, git=GIT, annotations=BAD_STORAGE)),
        {"main": None, "ready": False, "built": BUILDING, "apply": BUILD, "new_image": True}),
    Row("invalid/storage-annotation-upload-signed", seen(nb(upload=UPLOAD, annotations=BAD_STORAGE)),
        {"main": INVALID, "ready": False, "uploaded": ("False", "AwaitingUpload"), "sign_upload": True,
         "requeue": True}),
    Row("invalid/token-env", seen(nb(env={"NOTEBOOK_TOKEN": "x"})), {"main": INVALID, "ready": False,
                                                                     "message": "NOTEBOOK_TOKEN"}),
    Row("invalid/unsupported-gpu", seen(nb(resources=UNSUPPORTED_GPU)),
        {"main": ("Serving", "False", "UnsupportedGPU"), "ready": False}, GKE_CTX),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want", "ctx"), rows(TABLE))
def test_notebook_plan(seen: NotebookObservation, want: Summary, ctx: RenderContext) -> None:
    check(plan_notebook(seen, ctx=ctx, now=NOW, rng=rng()), N, want)


def test_the_token_is_drawn_from_the_plans_randomness() -> None:
    def token(seed: int) -> str:
        plan = plan_notebook(seen(PLAIN), ctx=CTX, now=NOW, rng=Random(seed))
        ((_, secret),) = [child for child in plan.create if child[0] == k8s.SECRETS]
        return str(secret["data"]["token"])

    assert token(0) == token(0)
    assert token(0) != token(1)


def test_the_pod_reads_the_token_from_the_secret_not_a_literal() -> None:
    plan = plan_notebook(seen(PLAIN), ctx=CTX, now=NOW, rng=rng())
    ((_, pod),) = [child for child in plan.apply if child[0] == k8s.PODS]
    ((_, secret),) = plan.create
    assert secret["data"]["token"] not in str(pod)
    assert secret["metadata"]["name"] in str(pod)


def test_an_upload_requested_while_the_spec_is_invalid_is_signed_at_once() -> None:
    """The handshake goes on while the workload's spec is invalid, so the URL in status is a signed one."""
    bad = plan_notebook(seen(nb(upload=UPLOAD, annotations=BAD_STORAGE)), ctx=CTX, now=NOW, rng=rng())
    assert bad.sign_upload is not None
    assert bad.status["buildUpload"]["requestID"] == UPLOAD["requestID"]


def test_a_pod_keeps_the_secret_it_names_whatever_is_drawn() -> None:
    """An existing Pod's Secret is read from the Pod: another draw must not make it look out of date."""
    for seed in (1, 2, 99):
        plan = plan_notebook(seen(PLAIN, pod=notebook_pod(PLAIN)), ctx=CTX, now=NOW, rng=Random(seed))
        assert not plan.delete
        assert not plan.create
        assert plan.status["ready"] is True


def test_each_new_pod_gets_a_secret_name_nobody_could_know() -> None:
    names = set()
    for seed in range(50):
        plan = plan_notebook(seen(PLAIN), ctx=CTX, now=NOW, rng=Random(seed))
        ((_, secret),) = plan.create
        names.add(secret["metadata"]["name"])
        assert secret["metadata"]["name"] != "nb-notebook-token"
    assert len(names) == 50


def test_the_network_policy_is_applied_before_the_pod() -> None:
    """The Pod is isolated from its first packet: the engine applies in the Plan's order."""
    plan = plan_notebook(seen(PLAIN), ctx=ISOLATING_CTX, now=NOW, rng=rng())
    kinds = [body["kind"] for _, body in plan.apply]
    assert kinds.index("NetworkPolicy") < kinds.index("Pod")
