"""Model: build (optional) -> wait for base Model and Dataset -> modeller Job -> Complete/Ready.

The base Model and the Dataset gate the start of a run, not a running or finished one: while one is
missing or not ready the ServiceAccount and params ConfigMap are applied and the Job waits."""

from __future__ import annotations

import dataclasses
from random import Random

from substratus_controller.api.v1.kinds import Model
from substratus_controller.constants import SA_MODELLER, ConditionType, Kind, Reason
from substratus_controller.render.context import RenderContext
from substratus_controller.render.params import params_configmap
from substratus_controller.render.workloads import modeller_job
from substratus_controller.status.conditions import Cond

from .observation import ModelObservation
from .outcome import Plan
from .prologue import RENDER_ERRORS, adopt_run, begin, dependency_gate, dependency_url, invalid_after_build
from .runs import plan_run, run_id


def model_gate(obj: Model, seen: ModelObservation) -> Cond | None:
    """The first unmet dependency of a run (base Model, then Dataset), or None."""
    if obj.spec.model:
        gate = dependency_gate(seen.base_model, name=obj.spec.model.name, what="Base model",
                               missing=Reason.BASE_MODEL_NOT_FOUND, not_ready=Reason.BASE_MODEL_NOT_READY,
                               ctype=ConditionType.COMPLETE)  # fmt: skip
        if gate is not None:
            return gate
    if obj.spec.dataset:
        return dependency_gate(seen.dataset, name=obj.spec.dataset.name, what="Dataset",
                               missing=Reason.DATASET_NOT_FOUND, not_ready=Reason.DATASET_NOT_READY,
                               ctype=ConditionType.COMPLETE)  # fmt: skip
    return None


def plan_model(seen: ModelObservation, *, ctx: RenderContext, now: str, rng: Random) -> Plan:
    """The Model's Plan (`rng` is unused: a Model draws nothing at random)."""
    start = begin(Model, Kind.MODEL, seen, ctx=ctx, now=now)
    if isinstance(start, Plan):
        return start
    obj, raw = start.obj, seen.obj
    meta = obj.metadata
    rid = run_id(obj)
    try:
        desired = modeller_job(
            obj,
            ctx,
            run_id=rid,
            base_model_url=dependency_url(
                obj.spec.model.name if obj.spec.model else None, Kind.MODEL, meta.namespace, ctx.cloud
            ),
            dataset_url=dependency_url(
                obj.spec.dataset.name if obj.spec.dataset else None, Kind.DATASET, meta.namespace, ctx.cloud
            ),
        )
        params = params_configmap(obj, Kind.MODEL)
    except RENDER_ERRORS as exc:
        return invalid_after_build(raw, Kind.MODEL, exc, now, start)
    run = plan_run(obj, raw, job=seen.job, desired=desired, what="modeller", rid=rid, pods=seen.run_pods)
    prefix = ctx.cloud.artifact_url(Kind.MODEL, meta.namespace, meta.name)
    gate = model_gate(obj, seen) if run.apply else None  # only the start of a run waits
    if gate is not None:
        run = dataclasses.replace(run, apply=[], condition=gate)
    adopt_run(start, run, service_account_name=SA_MODELLER, params=params, prefix=prefix, cloud=ctx.cloud)
    return start.finish(raw, run.condition, now)
