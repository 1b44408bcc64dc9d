"""What the four kinds' plans share: parse into InvalidSpec, plan the build, gate on dependencies, and add
the pods' prerequisites (the driver's mount objects and a ServiceAccount) to a Plan (pure)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from random import Random
from typing import Generic, TypeVar

from pydantic import ValidationError

from substratus_controller.api.v1.kinds import KINDS, Dataset, Model, Notebook, Server
from substratus_controller.cloud.base import BucketURL, CloudDriver, IdentityError, UnsupportedGPUError
from substratus_controller.constants import ConditionType, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.errors import InvalidSpecError
from substratus_controller.render.names import TOKEN_NONCE_LENGTH
from substratus_controller.render.serviceaccount import service_account
from substratus_controller.runtime import resources as k8s
from substratus_controller.status.conditions import Cond

from .build import BuildPlan, needs_storage_check, plan_build
from .observation import Observation
from .outcome import Plan
from .runs import RunPlan
from .status import invalid_plan, invalid_status, status_of, validation_message

T = TypeVar("T", Dataset, Model, Notebook, Server)
RENDER_ERRORS = (InvalidSpecError, UnsupportedGPUError)  # what a renderer raises for a spec it cannot render
TOKEN_BYTES = 32
_NONCE_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"  # 36^10 > 2^51 names


def parse(cls: type[T], raw: JSON) -> T | str:
    """The typed object, or a message describing why the spec is invalid."""
    try:
        return cls.model_validate({k: v for k, v in raw.items() if k != "status"} | {"status": {}})
    except ValidationError as exc:
        return validation_message(exc)


def new_token(rng: Random) -> str:
    """A URL-safe random token (as `secrets.token_urlsafe(32)`) drawn from the plan's source of randomness."""
    return base64.urlsafe_b64encode(rng.randbytes(TOKEN_BYTES)).rstrip(b"=").decode()


def new_token_nonce(rng: Random) -> str:
    """The nonce of a token Secret's name (render/names.py): TOKEN_NONCE_LENGTH of [a-z0-9]."""
    return "".join(rng.choice(_NONCE_ALPHABET) for _ in range(TOKEN_NONCE_LENGTH))


def runs_pods(plan: Plan, service_account_name: str, namespace: str, cloud: CloudDriver) -> None:
    """Add what pods in `namespace` need before they start: the driver's mount objects (once) and the
    ServiceAccount `service_account_name` (once)."""
    if not plan.mounts:
        for child in cloud.mount_objects(namespace):
            volume = child["kind"] == "PersistentVolume"
            plan.mounts.append((k8s.PERSISTENTVOLUMES if volume else k8s.PERSISTENTVOLUMECLAIMS, child))
    if all(sa["metadata"]["name"] != service_account_name for sa in plan.service_accounts):
        plan.service_accounts.append(service_account(service_account_name, namespace, cloud))


def invalid_after_build(raw: JSON, kind: Kind, error: str | Exception, now: str, started: Started[T]) -> Plan:
    """A spec whose workload cannot be acted upon although its build is fine: no workload children and no
    retry, but the build goes on (its Job, its upload handshake, spec.image), as while suspended, so that the
    image is ready once the spec is fixed."""
    build = started.build
    started.plan.status = invalid_status(raw, kind, error, now, blockers=build.blockers, extra=started.extra)
    return started.plan


def dependency_url(name: str | None, kind: Kind, namespace: str, cloud: CloudDriver) -> BucketURL | None:
    """Where the dependency `name` of `kind` keeps its artifacts, computed by the driver from its identity
    (never read from its status, which anyone allowed to patch it could point at another prefix or the
    node's /etc); None when the spec names no such dependency."""
    return cloud.artifact_url(kind, namespace, name) if name is not None else None


def dependency_gate(
    dep: JSON | None, *, name: str, what: str, missing: Reason, not_ready: Reason, ctype: ConditionType
) -> Cond | None:
    """A False condition when a referenced object is missing or not ready, else None."""
    if dep is None:
        return Cond(ctype, False, missing, f"{what} {name} not found")
    if not (dep.get("status") or {}).get("ready"):
        return Cond(ctype, False, not_ready, f"Waiting for {what} {name} to be ready")
    return None


def start_plan(
    obj: Dataset | Model | Notebook | Server, kind: Kind, seen: Observation, *, ctx: RenderContext, now: str
) -> tuple[Plan, BuildPlan]:
    """A Plan seeded with the object's build (children, spec.image, upload handshake, requeue).

    Raises the render errors (RENDER_ERRORS) for the caller to report."""
    meta = obj.metadata
    build = plan_build(obj, kind, ctx, job=seen.build_job, raw_status=seen.obj.get("status"),
                       stored_md5=seen.stored_md5, now=now, pods=list(seen.pods))  # fmt: skip
    plan = Plan(
        status={},
        apply=list(build.apply),
        delete=list(build.delete),
        spec_image=build.spec_image,
        requeue_after=build.requeue_after,
        new_image=build.new_image,
    )
    for name in build.service_accounts:
        runs_pods(plan, name, meta.namespace, ctx.cloud)
    if build.sign_upload is not None and obj.spec.build is not None and obj.spec.build.upload is not None:
        plan.sign_upload = (build.sign_upload, obj.spec.build.upload.md5_checksum.lower())
    return plan, build


@dataclass
class Started(Generic[T]):
    """A kind's plan past its prologue: the typed object, the Plan seeded with the build, the build's share,
    and the status fields every outcome carries (build upload status, artifacts URL)."""

    obj: T
    plan: Plan
    build: BuildPlan
    extra: JSON

    def finish(self, raw: JSON, main: Cond | None, now: str) -> Plan:
        """The Plan with its status: `main` (the kind's condition) after the build's conditions."""
        self.plan.status = status_of(raw, main=main, blockers=self.build.blockers, now=now, extra=self.extra)
        return self.plan


def begin(cls: type[T], kind: Kind, seen: Observation, *, ctx: RenderContext, now: str, artifacts: bool = True,
          gate_image: bool = True) -> Started[T] | Plan:  # fmt: skip
    """The prologue every kind shares: parse (InvalidSpec), plan the build (render errors), and, with
    `gate_image`, stop while there is no image yet (waiting for the build, or InvalidSpec without a build).

    Returns the finished Plan when the reconcile stops here, else what the kind needs to go on."""
    raw = seen.obj
    obj = parse(cls, raw)
    if isinstance(obj, str):
        return invalid_plan(raw, kind, obj, now)
    meta = obj.metadata
    try:
        ctx.cloud.workload_principal(meta.namespace)  # every pod of the namespace acts as it
    except IdentityError as exc:
        return invalid_plan(raw, kind, exc, now)
    try:
        plan, build = start_plan(obj, kind, seen, ctx=ctx, now=now)
    except RENDER_ERRORS as exc:
        return invalid_plan(raw, kind, exc, now)
    extra = dict(build.status)
    if artifacts:
        extra["artifacts"] = {"url": str(ctx.cloud.artifact_url(kind, meta.namespace, meta.name))}
    started = Started(obj, plan, build, extra)
    if gate_image and not obj.spec.image:
        return wait_for_image(raw, kind, started, now=now)
    return started


def wait_for_image(raw: JSON, kind: Kind, started: Started[T], *, now: str) -> Plan:
    """No image yet: waiting for the build, or InvalidSpec when there is no build either."""
    if not started.build.blockers:
        return invalid_plan(raw, kind, "spec.image or spec.build must be set", now)
    return started.finish(raw, None, now)


def adopt_run(
    started: Started[T], run: RunPlan, *, service_account_name: str, params: JSON, prefix: BucketURL, cloud: CloudDriver
) -> None:
    """Fold a Dataset/Model run into the plan: its pods' prerequisites, the params ConfigMap, the run's Job
    changes, and (when a Job is about to start) the artifact prefix to prepare for it."""
    plan = started.plan
    runs_pods(plan, service_account_name, started.obj.metadata.namespace, cloud)
    plan.apply += [(k8s.CONFIGMAPS, params), *run.apply]
    if run.apply:
        plan.prepare.append(prefix)
    plan.delete += run.delete


CLASS_OF: dict[Kind, type[Dataset | Model | Notebook | Server]] = {cls.KIND: cls for cls in KINDS}


def upload_to_check(raw: JSON, kind: Kind, ctx: RenderContext) -> BucketURL | None:
    """The stored build context the plan needs the md5 of (an upload not yet built), else None; an
    invalid spec needs none (its plan reports InvalidSpec)."""
    try:
        obj = CLASS_OF[kind].model_validate({**raw, "status": {}})
    except ValidationError:
        return None
    if not needs_storage_check(obj, kind, ctx):
        return None
    assert obj.spec.build is not None  # needs_storage_check
    assert obj.spec.build.upload is not None
    md5_hex = obj.spec.build.upload.md5_checksum.lower()
    return ctx.cloud.upload_url(kind, obj.metadata.namespace, obj.metadata.name, md5_hex)
