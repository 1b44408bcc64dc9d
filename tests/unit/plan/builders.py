"""Inputs and a summary for the plan tables (tests/unit/plan): plain-dict observations, no control plane.

What the helpers build, as the API server and informer caches would hand it to a plan:
- `obj(kind, ...)`: a Dataset/Model/Notebook/Server as cached (name, namespace, uid, generation, spec, and
  optionally a status left by an earlier reconcile);
- `run_job`, `build_job`: the object's loader/modeller Job or builder Job, labelled with the ids the plan
  computes itself (`run_id`, `build_id` of `target_image`, the retry token), with a Complete/Failed condition
  or a deletionTimestamp; `job(...)` for a Job with any labels (another run or build);
- `pod(...)`: a run or build pod in one of the states status/pods.py tells apart (ready, pending, image pull
  back-off, CrashLoopBackOff, OOMKilled, failed, unschedulable);
- `dep(...)`: a dependency (Model or Dataset), ready or not; `deployment(...)`: a Server's Deployment;
- `notebook_pod(...)`: the Pod the plan itself would create for a Notebook, as cached (stamped, with a status).

`summarise(plan, kind)` reduces a Plan to what the table rows assert (main condition, Built/Uploaded, ready,
the children applied, created and deleted as "Kind/name", requeue, prepare, spec.image, upload signing), and
`check(plan, kind, want)` compares it with a row's expectation: keys a row leaves out must be empty/false.
"""

from __future__ import annotations

import json
from random import Random
from typing import Any, NamedTuple

import pytest

from substratus_controller.api.v1 import Dataset, Model, Notebook, Server
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import (
    ANNOTATION_APPLIED,
    API_VERSION,
    BUILDER_BUILDAH,
    LABEL_BUILD,
    LABEL_RETRY,
    LABEL_ROLE,
    LABEL_RUN,
    ROLE_BUILD,
    ROLE_RUN,
    ConditionType,
    Kind,
    kind_label,
)
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import NotebookObservation, Observation, Plan, plan_notebook
from substratus_controller.plan.build import build_id, retry_token
from substratus_controller.plan.prologue import CLASS_OF
from substratus_controller.plan.runs import run_id
from substratus_controller.plan.status import MAIN_CONDITION
from substratus_controller.render.build import target_image
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import build_job_name, loader_job_name, modeller_job_name, server_name
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.stamp import stamp
from tests.unit.render.drivers import driver

NOW = "2026-01-01T00:00:00Z"
EARLIER = "2025-12-31T23:00:00Z"
SEED = 0
NS = "ns"
IMAGE = "registry.example.com/workload:v1"
MD5 = "0123456789abcdef0123456789abcdef"
GIT: JSON = {"url": "https://github.com/example/repo", "tag": "v1"}
UPLOAD: JSON = {"md5Checksum": MD5.upper(), "requestID": "r1"}

# The local cloud with the node's registry, as the golden files use it (buildah, plain-HTTP registry).
CTX = RenderContext(cloud=driver("local"), builder=BUILDER_BUILDAH, insecure_registry=True)
# GKE (the real gcp driver, offline), which places only some GPU types (nvidia-a10g is not one of them).
GKE_CTX = RenderContext(cloud=driver("gcp"))
# CTX with --notebook-network-policy deny-ingress.
ISOLATING_CTX = RenderContext(
    cloud=driver("local"), builder=BUILDER_BUILDAH, insecure_registry=True, notebook_network_policy="deny-ingress"
)
UNSUPPORTED_GPU: JSON = {"gpu": {"type": "nvidia-a10g", "count": 1}}


def no_registry_ctx() -> RenderContext:
    """The local cloud started without a registry (no --registry-url, no KEP-1755 ConfigMap)."""
    cloud = LocalDriver(registry_url="")
    cloud.registry_problem = "no ConfigMap kube-public/local-registry-hosting (KEP-1755)"
    return RenderContext(cloud=cloud, builder=BUILDER_BUILDAH, insecure_registry=True)


NO_REGISTRY_CTX = no_registry_ctx()


def rng() -> Random:
    return Random(SEED)


# ------------------------------------------------------------------------------------------------ objects
def obj(kind: Kind, name: str, *, image: str | None = IMAGE, git: JSON | None = None, upload: JSON | None = None,
        suspend: bool | None = None, model: str | None = None, dataset: str | None = None,
        annotations: dict[str, str] | None = None, generation: int = 1, status: JSON | None = None,
        **spec: Any) -> JSON:  # fmt: skip
    """The object `kind/name` in namespace NS as the cache holds it; `spec` adds any other spec field."""
    body: JSON = dict(spec)
    if image is not None:
        body["image"] = image
    if git is not None:
        body["build"] = {"git": dict(git)}
    if upload is not None:
        body["build"] = {"upload": dict(upload)}
    if suspend is not None:
        body["suspend"] = suspend
    if model is not None:
        body["model"] = {"name": model}
    if dataset is not None:
        body["dataset"] = {"name": dataset}
    meta: JSON = {"name": name, "namespace": NS, "uid": f"uid-{kind.singular}-{name}", "generation": generation}
    if annotations:
        meta["annotations"] = dict(annotations)
    out: JSON = {"apiVersion": API_VERSION, "kind": kind.value, "metadata": meta, "spec": body}
    if status is not None:
        out["status"] = status
    return out


def typed(raw: JSON) -> Dataset | Model | Notebook | Server:
    """The typed object the plan parses `raw` into (the status left out, as the plan does)."""
    return CLASS_OF[Kind(raw["kind"])].model_validate({**raw, "status": {}})


def kind_of(raw: JSON) -> Kind:
    return Kind(raw["kind"])


def name_of(raw: JSON) -> str:
    return str(raw["metadata"]["name"])


def run_label(raw: JSON) -> str:
    """The run id the plan labels a Dataset's or Model's Job with."""
    parsed = typed(raw)
    assert isinstance(parsed, Dataset | Model)
    return run_id(parsed)


def target(raw: JSON, ctx: RenderContext = CTX) -> str:
    """The image the object's build produces."""
    return target_image(typed(raw), kind_of(raw), ctx.cloud)


def build_label(raw: JSON, ctx: RenderContext = CTX) -> str:
    """The build id the plan labels the object's builder Job (and its pods) with."""
    return build_id(typed(raw), target(raw, ctx))


def retry_labels(raw: JSON) -> dict[str, str]:
    """The retry label a Job created for `raw` carries (none without a retry annotation or upload request)."""
    token = retry_token(typed(raw))
    return {LABEL_RETRY: token} if token else {}


def completed_status(generation: int = 1) -> JSON:
    """The status of a Dataset/Model whose Job completed at `generation` (the Job since cleaned up)."""
    conds = [
        {
            "type": t,
            "status": "True",
            "observedGeneration": generation,
            "lastTransitionTime": EARLIER,
            "reason": "JobComplete",
            "message": "The Job completed",
        }
        for t in (ConditionType.COMPLETE.value, ConditionType.READY.value)
    ]
    return {"ready": True, "observedGeneration": generation, "conditions": conds}


def uploaded_status(request: str = "r1", md5: str = MD5) -> JSON:
    """`status.buildUpload` once the upload of `md5` under `request` was found in storage."""
    return {"buildUpload": {"requestID": request, "storedMD5Checksum": md5}}


# ------------------------------------------------------------------------------------------------ Jobs
JOB_STATES: dict[str, JSON] = {
    "running": {"active": 1},
    "Complete": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1},
    "Failed": {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ],
        "failed": 1,
    },
}


def job(name: str, labels: dict[str, str], state: str = "running", *, deleting: bool = False) -> JSON:
    """A Job `name` in NS with `labels`, in `state` (running, Complete, Failed), optionally being deleted."""
    meta: JSON = {"name": name, "namespace": NS, "uid": f"uid-job-{name}", "labels": dict(labels)}
    if deleting:
        meta["deletionTimestamp"] = EARLIER
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "status": dict(JOB_STATES[state])}


def run_job_name(raw: JSON) -> str:
    kind = kind_of(raw)
    return loader_job_name(name_of(raw)) if kind == Kind.DATASET else modeller_job_name(name_of(raw))


def run_job(raw: JSON, state: str = "running", *, rid: str | None = None, deleting: bool = False) -> JSON:
    """The loader/modeller Job of `raw`'s current run (or of run `rid`)."""
    labels = {LABEL_ROLE: ROLE_RUN, LABEL_RUN: rid or run_label(raw), **retry_labels(raw)}
    return job(run_job_name(raw), labels, state, deleting=deleting)


def build_job(
    raw: JSON, state: str = "running", *, bid: str | None = None, ctx: RenderContext = CTX, deleting: bool = False
) -> JSON:
    """The builder Job of `raw`'s current build (or of build `bid`)."""
    labels = {LABEL_ROLE: ROLE_BUILD, LABEL_BUILD: bid or build_label(raw, ctx), **retry_labels(raw)}
    return job(build_job_name(kind_of(raw), name_of(raw)), labels, state, deleting=deleting)


# ------------------------------------------------------------------------------------------------ pods
def _container(state: str, *, image: str) -> JSON:
    """A container status in `state` (see pod)."""
    base: JSON = {"name": "main", "image": image, "ready": False, "restartCount": 0}
    if state == "ready":
        return {**base, "ready": True, "state": {"running": {"startedAt": EARLIER}}}
    if state == "running":
        return {**base, "state": {"running": {"startedAt": EARLIER}}}
    if state == "pull":
        return {
            **base,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}},
        }
    if state == "errpull":
        return {**base, "state": {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}}
    if state == "crash":
        last = {"terminated": {"exitCode": 1, "reason": "Error", "message": "Traceback: boom"}}
        return {**base, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": last}
    if state == "oom":
        return {**base, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    if state == "failed":
        return {**base, "state": {"terminated": {"exitCode": 2, "reason": "Error", "message": "loader: no such repo"}}}
    raise ValueError(f"unknown container state {state!r}")


PHASES = {"ready": "Running", "running": "Running", "oom": "Failed", "failed": "Failed"}


def pod_status(state: str, *, image: str = IMAGE) -> JSON:
    """A pod status: ready, running (not ready), pending, pull, errpull, crash, oom, failed, unschedulable."""
    if state == "pending":
        return {"phase": "Pending"}
    if state == "unschedulable":
        cond = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
        }
        return {"phase": "Pending", "conditions": [cond]}
    status: JSON = {"phase": PHASES.get(state, "Pending"), "containerStatuses": [_container(state, image=image)]}
    if state == "ready":
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    return status


def pod(
    raw: JSON,
    state: str,
    *,
    role: str = ROLE_RUN,
    labels: dict[str, str] | None = None,
    created: str = EARLIER,
    suffix: str = "x1",
) -> JSON:
    """A pod of `raw` with `role` in `state` (pod_status); `labels` adds the run or build id."""
    kind, name = kind_of(raw), name_of(raw)
    all_labels = {kind_label(kind): name, LABEL_ROLE: role, **(labels or {})}
    meta: JSON = {
        "name": f"{name}-{role}-{suffix}",
        "namespace": NS,
        "uid": f"uid-pod-{name}-{role}-{suffix}",
        "labels": all_labels,
        "creationTimestamp": created,
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": pod_status(state)}


def run_pod(raw: JSON, state: str, *, rid: str | None = None) -> JSON:
    """A pod of `raw`'s current run (Dataset/Model: labelled with the run id)."""
    return pod(raw, state, labels={LABEL_RUN: rid or run_label(raw)})


def build_pod(raw: JSON, state: str, *, ctx: RenderContext = CTX) -> JSON:
    """A pod of `raw`'s current build."""
    return pod(raw, state, role=ROLE_BUILD, labels={LABEL_BUILD: build_label(raw, ctx)})


# ------------------------------------------------------------------------------------------------ dependencies
def dep(kind: Kind, name: str, *, ready: bool = True, url: str | None = None) -> JSON:
    """A Model or Dataset in NS, ready or not, reporting its artifacts at `url` when given."""
    status: JSON = {"ready": ready, **({"artifacts": {"url": url}} if url else {})}
    meta = {"name": name, "namespace": NS, "uid": f"uid-{kind.singular}-{name}", "generation": 1}
    return {"apiVersion": API_VERSION, "kind": kind.value, "metadata": meta, "spec": {"image": IMAGE}, "status": status}


def deployment(raw: JSON, ready_replicas: int = 0) -> JSON:
    """A Server's Deployment as cached, with `readyReplicas`."""
    name = server_name(name_of(raw))
    meta = {"name": name, "namespace": NS, "uid": f"uid-deployment-{name}"}
    status: JSON = {"replicas": 1, **({"readyReplicas": ready_replicas} if ready_replicas else {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "status": status}


def notebook_pod(
    raw: JSON,
    state: str = "ready",
    *,
    model: JSON | None = None,
    dataset: JSON | None = None,
    ctx: RenderContext = CTX,
    deleting: bool = False,
    token_secret: str | None = None,
) -> JSON:
    """The Pod plan_notebook creates for `raw` (and these dependencies), as cached: stamped, in `state`;
    with `token_secret`, as if it had been created naming that Secret."""
    fresh = {**raw, "spec": {k: v for k, v in raw["spec"].items() if k != "suspend"}}
    plan = plan_notebook(NotebookObservation(obj=fresh, model=model, dataset=dataset), ctx=ctx, now=NOW, rng=rng())
    bodies = [body for res, body in plan.apply if res == k8s.PODS]
    assert len(bodies) == 1, f"the plan of {name_of(raw)} creates no Pod: {plan.status}"
    body = bodies[0]
    if token_secret is not None:
        ((_, drawn),) = plan.create
        body = json.loads(json.dumps(body).replace(f'"{drawn["metadata"]["name"]}"', json.dumps(token_secret)))
    cached = stamp(body, ANNOTATION_APPLIED)
    meta = {**cached["metadata"], "uid": f"uid-pod-{name_of(raw)}", "creationTimestamp": EARLIER}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {**cached, "metadata": meta, "status": pod_status(state, image=str(raw["spec"].get("image", IMAGE)))}


# ------------------------------------------------------------------------------------------------ summary
Summary = dict[str, Any]
DEFAULTS: Summary = {
    "built": None,  # (status, reason) of Built, None when absent
    "uploaded": None,  # (status, reason) of Uploaded
    "apply": set(),  # "Kind/name" of every body applied: mounts, ServiceAccounts, applies
    "create": set(),
    "delete": set(),
    "requeue": False,
    "prepare": False,  # an artifact prefix to ready before a workload starts
    "spec_image": None,
    "sign_upload": False,
    "new_image": False,
}
REQUIRED = ("main", "ready")


def _names(children: list[tuple[Any, JSON]]) -> set[str]:
    return {f"{res.kind}/{body['metadata']['name']}" for res, body in children}


def _cond(status: JSON, ctype: str) -> JSON | None:
    return next((c for c in status.get("conditions") or () if c.get("type") == ctype), None)


def main_condition(plan: Plan, kind: Kind) -> JSON | None:
    return _cond(plan.status, MAIN_CONDITION[kind].value)


def summarise(plan: Plan, kind: Kind) -> Summary:
    """What a row asserts of `plan` (see the module docstring)."""
    main = main_condition(plan, kind)
    built, uploaded = _cond(plan.status, "Built"), _cond(plan.status, "Uploaded")
    accounts = [(k8s.SERVICEACCOUNTS, sa) for sa in plan.service_accounts]
    return {
        "main": (main["type"], main["status"], main["reason"]) if main else None,
        "ready": plan.status["ready"],
        "built": (built["status"], built["reason"]) if built else None,
        "uploaded": (uploaded["status"], uploaded["reason"]) if uploaded else None,
        "apply": _names([*plan.mounts, *accounts, *plan.apply]),
        "create": _names(plan.create),
        "delete": _names(plan.delete),
        "requeue": plan.requeue_after is not None,
        "prepare": bool(plan.prepare),
        "spec_image": plan.spec_image,
        "sign_upload": plan.sign_upload is not None,
        "new_image": plan.new_image is not None,
    }


def _show(value: Any) -> str:
    return repr(sorted(value)) if isinstance(value, set) else repr(value)


def check(plan: Plan, kind: Kind, want: Summary) -> None:
    """Assert that `plan` summarises to `want` (DEFAULTS for the keys it omits); `want["message"]`, when
    given, must occur in the Ready condition's message (that of the first condition that is not True)."""
    missing = [k for k in REQUIRED if k not in want]
    assert not missing, f"a row must name {missing}"
    expected = {**DEFAULTS, **{k: v for k, v in want.items() if k != "message"}}
    got = summarise(plan, kind)
    wrong = [f"{k}: got {_show(got[k])}, want {_show(expected[k])}" for k in expected if got[k] != expected[k]]
    assert not wrong, "the plan differs from the row:\n  " + "\n  ".join(wrong)  # builders.py is not rewritten
    if "message" in want:
        ready = _cond(plan.status, ConditionType.READY.value)
        assert ready is not None
        assert want["message"] in ready.get("message", ""), f"{want['message']!r} not in the Ready message {ready}"


# ------------------------------------------------------------------------------------------------ rows
class Row(NamedTuple):
    """One table row: an id, the observation, the expected summary, the render context (CTX by default), and
    `bug`: when set, `want` is the documented behaviour the plan does not have yet (a strict xfail, so that the
    row turns red once the plan is fixed and the mark must go)."""

    id: str
    seen: Observation
    want: Summary
    ctx: RenderContext = CTX
    bug: str = ""


def rows(table: list[Row]) -> list[Any]:
    """`table` as pytest parameters (seen, want, ctx), each with its row's id."""
    ids = [row.id for row in table]
    assert len(set(ids)) == len(ids), "row ids must be unique"
    return [
        pytest.param(
            row.seen,
            row.want,
            row.ctx,
            id=row.id,
            marks=[pytest.mark.xfail(strict=True, reason=row.bug)] if row.bug else [],
        )
        for row in table
    ]
