"""Pure helpers the per-kind plans share: parsing into InvalidSpec, dependency gates, status assembly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import ValidationError

from substratus_controller.api.v1.kinds import Dataset, Model, Notebook, Server
from substratus_controller.cloud.base import BucketURL, CloudDriver, UnsupportedGPUError
from substratus_controller.constants import ConditionType, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.errors import InvalidSpecError
from substratus_controller.render.names import build_job_name
from substratus_controller.runtime import resources as k8s
from substratus_controller.status.conditions import Cond, merge_conditions, ready_condition

from .build import BuildPlan, plan_build
from .engine import Caches, Plan
from .runs import RunPlan

T = TypeVar("T", Dataset, Model, Notebook, Server)
MAIN_CONDITION = {
    Kind.DATASET: ConditionType.COMPLETE,
    Kind.MODEL: ConditionType.COMPLETE,
    Kind.NOTEBOOK: ConditionType.SERVING,
    Kind.SERVER: ConditionType.SERVING,
}


def validation_message(exc: ValidationError) -> str:
    """A one-line summary naming each offending field by its JSON path."""
    parts = []
    for err in exc.errors()[:5]:
        path = ".".join(str(p) for p in err["loc"])
        parts.append(f"{path}: {err['msg']}")
    more = f" (and {len(exc.errors()) - 5} more)" if len(exc.errors()) > 5 else ""
    return "; ".join(parts) + more


def parse(cls: type[T], raw: JSON) -> T | str:
    """The typed object, or a message describing why the spec is invalid."""
    try:
        return cls.model_validate({k: v for k, v in raw.items() if k != "status"} | {"status": {}})
    except ValidationError as exc:
        return validation_message(exc)


def status_of(raw: JSON, kind: Kind, *, main: Cond | None, blockers: list[Cond], now: str,
              extra: JSON | None = None) -> JSON:  # fmt: skip
    """The whole status: ready, observedGeneration, conditions (+ Ready), and kind-specific fields."""
    generation = int(raw["metadata"].get("generation", 0))
    ready = ready_condition(main, blockers)
    conds = [c for c in (*blockers, main) if c is not None]
    previous = (raw.get("status") or {}).get("conditions")
    status: JSON = {
        "ready": ready.ok,
        "observedGeneration": generation,
        "conditions": merge_conditions(previous, [*conds, ready], generation=generation, now=now),
    }
    status.update(extra or {})
    return status


def invalid_plan(raw: JSON, kind: Kind, error: str | Exception, now: str, *, build: BuildPlan | None = None) -> Plan:
    """A Plan that only reports why the spec cannot be acted upon (no children, no retry); the build's own
    conditions and upload status are kept when the build itself is fine."""
    reason = Reason.UNSUPPORTED_GPU if isinstance(error, UnsupportedGPUError) else Reason.INVALID_SPEC
    message = str(error) if not isinstance(error, str) else error
    main = Cond(MAIN_CONDITION[kind], False, reason, message)
    blockers = build.blockers if build is not None else []
    extra = build.status if build is not None else {}
    return Plan(status=status_of(raw, kind, main=main, blockers=blockers, now=now, extra=extra))


def render_errors() -> tuple[type[Exception], ...]:
    return (InvalidSpecError, UnsupportedGPUError)


def dependency_gate(dep: JSON | None, *, name: str, what: str, missing: Reason, not_ready: Reason,
                    ctype: ConditionType) -> Cond | None:  # fmt: skip
    """A False condition when a referenced object is missing or not ready, else None."""
    if dep is None:
        return Cond(ctype, False, missing, f"{what} {name} not found")
    if not (dep.get("status") or {}).get("ready"):
        return Cond(ctype, False, not_ready, f"Waiting for {what} {name} to be ready")
    return None


def artifacts_of(dep: JSON, kind: Kind, cloud: CloudDriver) -> BucketURL:
    """Where a dependency's artifacts are: its reported URL, else the computed one."""
    url = ((dep.get("status") or {}).get("artifacts") or {}).get("url")
    if url:
        return BucketURL.parse(url)
    meta = dep["metadata"]
    return cloud.artifact_url(kind, meta["namespace"], meta["name"])


def start_plan(obj: Dataset | Model | Notebook | Server, kind: Kind, raw: JSON, *, ctx: RenderContext, caches: Caches,
               now: str, stored_md5: str | None) -> tuple[Plan, BuildPlan]:  # fmt: skip
    """A Plan seeded with the object's build (children, spec.image, upload handshake, requeue).

    Raises the render errors (InvalidSpecError, UnsupportedGPUError) for the caller to report."""
    meta = obj.metadata
    build = plan_build(
        obj,
        kind,
        ctx,
        job=caches.jobs.get(meta.namespace, build_job_name(kind, meta.name)),
        raw_status=raw.get("status"),
        stored_md5=stored_md5,
        now=now,
        pods=caches.pods_of(kind, meta.namespace, meta.name, run=False),
    )
    plan = Plan(
        status={},
        service_accounts=list(build.service_accounts),
        apply=list(build.apply),
        delete=list(build.delete),
        spec_image=build.spec_image,
        requeue_after=build.requeue_after,
        new_image=build.new_image,
    )
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


def begin(cls: type[T], kind: Kind, raw: JSON, *, ctx: RenderContext, caches: Caches, now: str,
          stored_md5: str | None, artifacts: bool = True, gate_image: bool = True) -> Started[T] | Plan:  # fmt: skip
    """The prologue every kind shares: parse (InvalidSpec), plan the build (render errors), and, with
    `gate_image`, stop while there is no image yet (waiting for the build, or InvalidSpec without a build).

    Returns the finished Plan when the reconcile stops here, else what the kind needs to go on."""
    obj = parse(cls, raw)
    if isinstance(obj, str):
        return invalid_plan(raw, kind, obj, now)
    meta = obj.metadata
    try:
        plan, build = start_plan(obj, kind, raw, ctx=ctx, caches=caches, now=now, stored_md5=stored_md5)
    except render_errors() as exc:
        return invalid_plan(raw, kind, exc, now)
    extra = dict(build.status)
    if artifacts:
        extra["artifacts"] = {"url": str(ctx.cloud.artifact_url(kind, meta.namespace, meta.name))}
    if gate_image and not obj.spec.image:
        return wait_for_image(raw, kind, plan, build, extra=extra, now=now)
    return Started(obj, plan, build, extra)


def wait_for_image(raw: JSON, kind: Kind, plan: Plan, build: BuildPlan, *, extra: JSON, now: str) -> Plan:
    """No image yet: waiting for the build, or InvalidSpec when there is no build either."""
    if not build.blockers:
        return invalid_plan(raw, kind, "spec.image or spec.build must be set", now)
    plan.status = status_of(raw, kind, main=None, blockers=build.blockers, now=now, extra=extra)
    return plan


def adopt_run(plan: Plan, run: RunPlan, *, service_account: str, params: JSON, prefix: BucketURL) -> None:
    """Fold a Dataset/Model run into the plan: its ServiceAccount, params ConfigMap, the run's Job changes,
    and (when a Job is about to start) the artifact prefix to prepare for it."""
    plan.service_accounts.append(service_account)
    plan.apply += [(k8s.CONFIGMAPS, params), *run.apply]
    if run.apply:
        plan.prepare.append(prefix)
    plan.delete += run.delete
