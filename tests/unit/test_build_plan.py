"""controllers/build.py `plan_build` as a table (fast tier): the build life cycle from the cached build Job
and its pods to the Built condition, the Job to create or delete, and spec.image.

The pods' statuses have the shapes kubelet v1.20 reports; the real-node tier runs the same cases with real
builds (e2e/real/test_builds.py)."""

from __future__ import annotations

import pytest

from substratus_controller.api.v1 import Model
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import LABEL_BUILD, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.plan.build import build_id, plan_build, retry_token, with_retry_label
from substratus_controller.render.build import build_job, target_image
from substratus_controller.render.context import RenderContext

MD5 = "0123456789abcdef0123456789abcdef"
CTX = RenderContext(cloud=LocalDriver(registry_url="10.244.0.1:5000"))


def model(*, request: str = "r1", md5: str = MD5, image: str | None = None, retry: str | None = None) -> Model:
    spec: JSON = {"build": {"upload": {"md5Checksum": md5, "requestID": request}}}
    if image:
        spec["image"] = image
    meta: JSON = {"name": "m", "namespace": "ns", "uid": "u1"}
    if retry:
        meta["annotations"] = {"substratus.ai/retry": retry}
    return Model.model_validate({"apiVersion": "substratus.ai/v1", "kind": "Model", "metadata": meta, "spec": spec})


def job_for(obj: Model, *, status: JSON | None = None) -> JSON:
    """The Job plan_build would have created for `obj`, as the cache holds it."""
    target = target_image(obj, Kind.MODEL, CTX.cloud)
    job = with_retry_label(
        build_job(obj, Kind.MODEL, CTX, target=target, build_id=build_id(obj, target)), retry_token(obj)
    )
    return {**job, "status": status or {}}


FAILED = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                          "message": "Job has reached the specified backoff limit"}]}  # fmt: skip
COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}]}
BUILDAH_TAIL = (
    "STEP 2/3: RUN python3 -c 'raise SystemExit(3)'\n"
    "error building at STEP \"RUN python3 -c 'raise SystemExit(3)'\": error while running runtime: exit status 3\n"
    "substratus: build failed"
)


def build_pod(obj: Model, *, container: JSON, created: str = "2026-12-01T10:00:00Z", init: JSON | None = None) -> JSON:
    target = target_image(obj, Kind.MODEL, CTX.cloud)
    status: JSON = {"phase": "Failed", "containerStatuses": [container]}
    if init:
        status["initContainerStatuses"] = [init]
    labels = {LABEL_BUILD: build_id(obj, target), "role": "build"}
    return {
        "metadata": {"name": f"m-model-bld-{created[-3:-1]}", "labels": labels, "creationTimestamp": created},
        "status": status,
    }


def terminated(name: str, code: int, message: str) -> JSON:
    return {"name": name, "ready": False, "restartCount": 0, "image": "b:1",
            "state": {"terminated": {"exitCode": code, "reason": "Error", "message": message}}}  # fmt: skip


def uploaded(obj: Model) -> JSON:
    return {"buildUpload": {"requestID": obj.spec.build.upload.request_id, "storedMD5Checksum": MD5}}  # type: ignore[union-attr]


def test_a_failed_build_names_the_failing_step_from_the_builder_pod() -> None:
    obj = model()
    pods = [build_pod(obj, container=terminated("builder", 1, BUILDAH_TAIL))]
    plan = plan_build(obj, Kind.MODEL, CTX, job=job_for(obj, status=FAILED), pods=pods, stored_md5=MD5,
                      raw_status=uploaded(obj), now="2026-12-01T10:01:00Z")  # fmt: skip
    assert plan.condition is not None
    assert (plan.condition.reason, plan.condition.ok) == (Reason.BUILD_FAILED, False)
    assert "error building at STEP \"RUN python3 -c 'raise SystemExit(3)'\"" in plan.condition.message
    assert "container builder failed with exit code 1" in plan.condition.message
    assert not plan.apply
    assert not plan.delete


def test_a_failed_clone_names_the_git_server() -> None:
    obj = model()
    clone = terminated(
        "git-clone", 128, "fatal: unable to connect to 10.244.0.1:\n10.244.0.1[0: 10.244.0.1]: errno=Connection refused"
    )
    pending = {"name": "builder", "ready": False, "state": {"waiting": {"reason": "PodInitializing"}}}
    pods = [build_pod(obj, container=pending, init=clone)]
    plan = plan_build(obj, Kind.MODEL, CTX, job=job_for(obj, status=FAILED), pods=pods, stored_md5=MD5,
                      raw_status=uploaded(obj), now="2026-12-01T10:01:00Z")  # fmt: skip
    assert plan.condition is not None
    assert "init container git-clone failed with exit code 128" in plan.condition.message
    assert "unable to connect to 10.244.0.1" in plan.condition.message


def test_a_failed_build_without_pods_falls_back_to_the_job_message() -> None:
    obj = model()
    plan = plan_build(obj, Kind.MODEL, CTX, job=job_for(obj, status=FAILED), pods=[], stored_md5=MD5,
                      raw_status=uploaded(obj), now="2026-12-01T10:01:00Z")  # fmt: skip
    assert plan.condition is not None
    assert "Job has reached the specified backoff limit" in plan.condition.message


@pytest.mark.parametrize(
    ("change", "rebuilds"),
    [
        ({}, False),  # nothing changed: stays BuildFailed, no retry storm
        ({"request": "r2"}, True),  # kubectl applybuild again (same content, new requestID)
        ({"retry": "1"}, True),  # the retry annotation
    ],
)
def test_a_new_request_id_or_retry_after_a_failure_starts_a_new_build(change: JSON, rebuilds: bool) -> None:
    failed_job = job_for(model(), status=FAILED)
    obj = model(**change)
    plan = plan_build(obj, Kind.MODEL, CTX, job=failed_job, pods=[], stored_md5=MD5,
                      raw_status=uploaded(model()), now="2026-12-01T10:01:00Z")  # fmt: skip
    assert plan.condition is not None
    assert bool(plan.delete) is rebuilds
    assert plan.condition.reason == (Reason.JOB_NOT_COMPLETE if rebuilds else Reason.BUILD_FAILED)


def test_the_same_md5_under_a_new_request_id_with_the_image_built_needs_no_upload_and_no_build() -> None:
    first = model()
    image = target_image(first, Kind.MODEL, CTX.cloud)
    obj = model(request="r2", image=image)
    plan = plan_build(
        obj, Kind.MODEL, CTX, job=None, pods=[], stored_md5=None, raw_status=uploaded(first), now="2026-12-01T10:01:00Z"
    )
    assert plan.condition is not None
    assert (plan.condition.reason, plan.condition.ok) == (Reason.JOB_COMPLETE, True)
    assert plan.upload_condition is not None
    assert plan.upload_condition.ok
    assert plan.sign_upload is None
    assert not plan.apply


def test_a_complete_build_sets_the_image() -> None:
    obj = model()
    plan = plan_build(obj, Kind.MODEL, CTX, job=job_for(obj, status=COMPLETE), pods=[], stored_md5=MD5,
                      raw_status=uploaded(obj), now="2026-12-01T10:01:00Z")  # fmt: skip
    assert plan.spec_image == "10.244.0.1:5000/substratus-model-ns.m:" + MD5


def test_a_builder_pod_that_cannot_pull_its_image_says_so() -> None:
    obj = model()
    waiting = {
        "name": "builder",
        "ready": False,
        "image": "quay.io/buildah/stable:v1.38.0",
        "state": {"waiting": {"reason": "ErrImagePull", "message": "dial tcp: lookup quay.io: no such host"}},
    }
    pod = build_pod(obj, container=waiting)
    pod["status"]["phase"] = "Pending"
    plan = plan_build(obj, Kind.MODEL, CTX, job=job_for(obj), pods=[pod], stored_md5=MD5,
                      raw_status=uploaded(obj), now="2026-12-01T10:01:00Z")  # fmt: skip
    assert plan.condition is not None
    assert plan.condition.reason == Reason.IMAGE_PULL_FAILED
    assert "quay.io/buildah/stable:v1.38.0" in plan.condition.message


def test_pods_of_an_older_build_are_not_this_builds_story() -> None:
    old = model(md5="f" * 32)
    obj = model()
    pods = [build_pod(old, container=terminated("builder", 1, "substratus: build failed"))]
    plan = plan_build(obj, Kind.MODEL, CTX, job=job_for(obj), pods=pods, stored_md5=MD5,
                      raw_status=uploaded(obj), now="2026-12-01T10:01:00Z")  # fmt: skip
    assert plan.condition is not None
    assert plan.condition.reason == Reason.JOB_NOT_COMPLETE


def test_no_registry_reports_a_condition_and_creates_nothing() -> None:
    driver = LocalDriver(registry_url="")
    driver.registry_problem = "no ConfigMap kube-public/local-registry-hosting (KEP-1755)"
    obj = model()
    plan = plan_build(obj, Kind.MODEL, RenderContext(cloud=driver), job=None, pods=[], stored_md5=None,
                      raw_status=None, now="2026-12-01T10:01:00Z")  # fmt: skip
    assert plan.condition is not None
    assert plan.condition.reason == Reason.REGISTRY_NOT_CONFIGURED
    assert "local-registry-hosting" in plan.condition.message
    assert not plan.apply
    assert plan.requeue_after is None
