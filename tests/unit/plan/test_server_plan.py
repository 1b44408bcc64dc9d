"""plan_server as a table: from a Server, its builder Job, its Deployment, its pods and its Model to the Plan.

Specifies: the Model gates the first start only (missing or not ready and no Deployment: nothing applied;
with a Deployment the serving children stay applied); Serving follows the Deployment's readyReplicas, and
without a ready replica the newest run pod's problem (CrashLoopBackOff, ImagePullFailed, OOMKilled,
Unschedulable) or DeploymentNotReady; the build (none, git, upload, no registry) as for the other kinds; an
invalid spec is InvalidSpec (or UnsupportedGPU) and touches no child.
"""

from __future__ import annotations

from typing import Any

import pytest

from substratus_controller.constants import ROLE_BUILD, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import ServerObservation, plan_server
from substratus_controller.render.context import RenderContext
from substratus_controller.runtime import resources as k8s

from .builders import (
    CTX,
    GIT,
    GKE_CTX,
    NO_REGISTRY_CTX,
    NOW,
    UNSUPPORTED_GPU,
    UPLOAD,
    Row,
    Summary,
    build_job,
    check,
    dep,
    deployment,
    obj,
    pod,
    rng,
    rows,
    target,
)

S = Kind.SERVER


def server(**kw: Any) -> JSON:
    return obj(S, "s", **{"model": "llm", **kw})


def seen(raw: JSON, **kw: Any) -> ServerObservation:
    return ServerObservation(obj=raw, **kw)


PLAIN = server()
GIT_PENDING = server(image=None, git=GIT)
REBUILDING = server(git=GIT)
MODEL = dep(Kind.MODEL, "llm")
DOWN, UP = deployment(PLAIN), deployment(PLAIN, ready_replicas=1)
SERVE = {
    "ServiceAccount/substratus-model-server",
    "ConfigMap/s-server-params",
    "Service/s-server",
    "Deployment/s-server",
}
BUILD = {"ServiceAccount/substratus-container-builder", "Job/s-server-bld"}

NOT_READY = ("Serving", "False", "DeploymentNotReady")
SERVING = ("Serving", "True", "DeploymentReady")
INVALID = ("Serving", "False", "InvalidSpec")
BUILDING = ("False", "JobNotComplete")


def pods_say(reason: str) -> Summary:
    return {"main": ("Serving", "False", reason), "ready": False, "apply": SERVE}


TABLE: list[Row] = [
    # the Model gate
    Row("model/missing-no-deployment", seen(PLAIN), {"main": ("Serving", "False", "ModelNotFound"), "ready": False,
                                                     "message": "Model llm not found"}),
    Row("model/not-ready-no-deployment", seen(PLAIN, model=dep(Kind.MODEL, "llm", ready=False)),
        {"main": ("Serving", "False", "ModelNotReady"), "ready": False}),
    Row("model/ready-no-deployment", seen(PLAIN, model=MODEL), {"main": NOT_READY, "ready": False, "apply": SERVE}),
    Row("model/missing-deployment-present", seen(PLAIN, deployment=DOWN),
        {"main": NOT_READY, "ready": False, "apply": SERVE}),
    Row("model/missing-deployment-ready", seen(PLAIN, deployment=UP), {"main": SERVING, "ready": True,
                                                                        "apply": SERVE}),
    Row("model/not-ready-deployment-ready", seen(PLAIN, model=dep(Kind.MODEL, "llm", ready=False), deployment=UP),
        {"main": SERVING, "ready": True, "apply": SERVE}),
    # Serving from the Deployment and its pods
    Row("deployment/ready", seen(PLAIN, model=MODEL, deployment=UP),
        {"main": SERVING, "ready": True, "apply": SERVE, "message": "1 replica(s) ready"}),
    Row("deployment/three-ready", seen(PLAIN, model=MODEL, deployment=deployment(PLAIN, ready_replicas=3)),
        {"main": SERVING, "ready": True, "apply": SERVE, "message": "3 replica(s) ready"}),
    Row("deployment/no-ready-replica", seen(PLAIN, model=MODEL, deployment=DOWN), pods_say("DeploymentNotReady")),
    Row("pods/pending", seen(PLAIN, model=MODEL, deployment=DOWN, pods=(pod(PLAIN, "pending"),)),
        pods_say("DeploymentNotReady")),
    Row("pods/crash-loop", seen(PLAIN, model=MODEL, deployment=DOWN, pods=(pod(PLAIN, "crash"),)),
        {**pods_say("CrashLoopBackOff"), "message": "keeps crashing (exit code 1: Traceback: boom)"}),
    Row("pods/pull-back-off", seen(PLAIN, model=MODEL, deployment=DOWN, pods=(pod(PLAIN, "pull"),)),
        pods_say("ImagePullFailed")),
    Row("pods/oom-killed", seen(PLAIN, model=MODEL, deployment=DOWN, pods=(pod(PLAIN, "oom"),)),
        pods_say("OOMKilled")),
    Row("pods/unschedulable", seen(PLAIN, model=MODEL, deployment=DOWN, pods=(pod(PLAIN, "unschedulable"),)),
        pods_say("Unschedulable")),
    Row("pods/newest-decides", seen(PLAIN, model=MODEL, deployment=DOWN, pods=(
        pod(PLAIN, "crash", created="2025-12-31T10:00:00Z", suffix="old"),
        pod(PLAIN, "errpull", created="2025-12-31T11:00:00Z", suffix="new"))), pods_say("ImagePullFailed")),
    Row("pods/a-ready-replica-wins", seen(PLAIN, model=MODEL, deployment=UP, pods=(pod(PLAIN, "crash"),)),
        {"main": SERVING, "ready": True, "apply": SERVE}),
    Row("pods/builder-pods-do-not-count", seen(PLAIN, model=MODEL, deployment=DOWN,
                                               pods=(pod(PLAIN, "crash", role=ROLE_BUILD),)),
        pods_say("DeploymentNotReady")),
    # build
    Row("build/git-no-job", seen(GIT_PENDING, model=MODEL),
        {"main": None, "ready": False, "built": BUILDING, "apply": BUILD, "new_image": True}),
    Row("build/git-no-job-model-missing", seen(GIT_PENDING),
        {"main": None, "ready": False, "built": BUILDING, "apply": BUILD, "new_image": True}),
    Row("build/git-job-complete", seen(GIT_PENDING, model=MODEL, build_job=build_job(GIT_PENDING, "Complete")),
        {"main": None, "ready": False, "built": ("True", "JobComplete"), "spec_image": target(GIT_PENDING)}),
    Row("build/git-job-failed", seen(GIT_PENDING, model=MODEL, build_job=build_job(GIT_PENDING, "Failed")),
        {"main": None, "ready": False, "built": ("False", "BuildFailed")}),
    Row("build/rebuild-while-serving", seen(REBUILDING, model=MODEL, deployment=UP,
                                            build_job=build_job(REBUILDING)),
        {"main": SERVING, "ready": False, "built": BUILDING, "apply": SERVE}),
    Row("build/upload-awaiting", seen(server(image=None, upload=UPLOAD), model=MODEL),
        {"main": None, "ready": False, "uploaded": ("False", "AwaitingUpload"), "sign_upload": True,
         "requeue": True}),
    Row("build/no-registry", seen(GIT_PENDING, model=MODEL),
        {"main": None, "ready": False, "built": ("False", "RegistryNotConfigured")}, NO_REGISTRY_CTX),
    # invalid
    Row("invalid/no-model", seen(obj(S, "s")), {"main": INVALID, "ready": False, "message": "spec.model"}),
    # names the API server takes for a Server but not for its Service (no apply that must fail)
    Row("invalid/name-starts-with-a-digit", seen(obj(S, "0s", model="llm"), model=MODEL),
        {"main": INVALID, "ready": False, "message": "metadata.name"}),
    Row("invalid/name-with-a-dot", seen(obj(S, "s.v1", model="llm"), model=MODEL),
        {"main": INVALID, "ready": False, "message": "metadata.name"}),
    Row("invalid/schema", seen(server(resources={"disk": "lots"}), model=MODEL), {"main": INVALID, "ready": False}),
    Row("invalid/no-image-no-build", seen(server(image=None), model=MODEL), {"main": INVALID, "ready": False}),
    Row("invalid/unsupported-gpu", seen(server(resources=UNSUPPORTED_GPU), model=MODEL),
        {"main": ("Serving", "False", "UnsupportedGPU"), "ready": False}, GKE_CTX),
    Row("invalid/unsupported-gpu-deployment-kept", seen(server(resources=UNSUPPORTED_GPU), model=MODEL,
                                                        deployment=UP),
        {"main": ("Serving", "False", "UnsupportedGPU"), "ready": False}, GKE_CTX),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want", "ctx"), rows(TABLE))
def test_server_plan(seen: ServerObservation, want: Summary, ctx: RenderContext) -> None:
    check(plan_server(seen, ctx=ctx, now=NOW, rng=rng()), S, want)


def mounted_paths(plan_seen: ServerObservation) -> set[str]:
    plan = plan_server(plan_seen, ctx=CTX, now=NOW, rng=rng())
    (body,) = [body for res, body in plan.apply if res == k8s.DEPLOYMENTS]
    return {v["hostPath"]["path"] for v in body["spec"]["template"]["spec"]["volumes"] if "hostPath" in v}


def test_a_forged_status_url_is_never_mounted() -> None:
    """Security model (README): anyone who may patch the Model's status could point it at the node's /etc; the Server
    mounts the driver's URL for the Model's identity instead."""
    forged = dep(Kind.MODEL, "llm", url="file:///etc")
    paths = mounted_paths(seen(PLAIN, model=forged))
    assert "/etc" not in paths
    assert CTX.cloud.artifact_url(Kind.MODEL, "ns", "llm").path in paths


def test_a_missing_model_keeps_the_computed_artifacts_of_a_running_server() -> None:
    computed = CTX.cloud.artifact_url(Kind.MODEL, "ns", "llm").path
    assert computed in mounted_paths(seen(PLAIN, deployment=UP))
    assert mounted_paths(seen(PLAIN, deployment=UP)) == mounted_paths(seen(PLAIN, model=MODEL))
