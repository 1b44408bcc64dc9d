"""Model: build (optional) -> wait for base Model and Dataset -> modeller Job -> Complete/Ready."""

from __future__ import annotations

import dataclasses

from substratus_controller.api.v1.kinds import Model
from substratus_controller.constants import SA_MODELLER, ConditionType, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import modeller_job_name
from substratus_controller.render.params import params_configmap
from substratus_controller.render.workloads import modeller_job

from .engine import Caches, KindReconciler, Plan
from .plans import adopt_run, artifacts_of, begin, dependency_gate, invalid_plan, render_errors, status_of
from .runs import plan_run, run_id


def plan_model(raw: JSON, *, ctx: RenderContext, caches: Caches, now: str, stored_md5: str | None = None) -> Plan:
    start = begin(Model, Kind.MODEL, raw, ctx=ctx, caches=caches, now=now, stored_md5=stored_md5)
    if isinstance(start, Plan):
        return start
    obj, plan, build, extra = start.obj, start.plan, start.build, start.extra
    meta = obj.metadata
    job = caches.jobs.get(meta.namespace, modeller_job_name(meta.name))
    base = caches.models.get(meta.namespace, obj.spec.model.name) if obj.spec.model else None
    data = caches.datasets.get(meta.namespace, obj.spec.dataset.name) if obj.spec.dataset else None
    rid = run_id(obj)
    try:
        desired = modeller_job(
            obj,
            ctx,
            run_id=rid,
            base_model_url=artifacts_of(base, Kind.MODEL, ctx.cloud) if base is not None else None,
            dataset_url=artifacts_of(data, Kind.DATASET, ctx.cloud) if data is not None else None,
        )
        params = params_configmap(obj, Kind.MODEL)
    except render_errors() as exc:
        return invalid_plan(raw, Kind.MODEL, exc, now, build=build)
    run = plan_run(obj, raw, job=job, desired=desired, what="modeller", rid=rid,
                   pods=caches.pods_of(Kind.MODEL, meta.namespace, meta.name))  # fmt: skip
    prefix = ctx.cloud.artifact_url(Kind.MODEL, meta.namespace, meta.name)
    if run.apply:  # about to start a run: the base model and the dataset must be ready first
        gates = []
        if obj.spec.model:
            gates.append(dependency_gate(base, name=obj.spec.model.name, what="Base model",
                                         missing=Reason.BASE_MODEL_NOT_FOUND, not_ready=Reason.BASE_MODEL_NOT_READY,
                                         ctype=ConditionType.COMPLETE))  # fmt: skip
        if obj.spec.dataset:
            gates.append(dependency_gate(data, name=obj.spec.dataset.name, what="Dataset",
                                         missing=Reason.DATASET_NOT_FOUND, not_ready=Reason.DATASET_NOT_READY,
                                         ctype=ConditionType.COMPLETE))  # fmt: skip
        gate = next((g for g in gates if g is not None), None)
        if gate is not None:  # the ServiceAccount and ConfigMap are ready; the Job waits
            adopt_run(plan, dataclasses.replace(run, apply=[]), service_account=SA_MODELLER, params=params,
                      prefix=prefix)  # fmt: skip
            plan.status = status_of(raw, Kind.MODEL, main=gate, blockers=build.blockers, now=now, extra=extra)
            return plan
    adopt_run(plan, run, service_account=SA_MODELLER, params=params, prefix=prefix)
    plan.status = status_of(raw, Kind.MODEL, main=run.condition, blockers=build.blockers, now=now, extra=extra)
    return plan


class ModelReconciler(KindReconciler):
    kind = Kind.MODEL

    def plan(self, obj: JSON, now: str, stored_md5: str | None = None) -> Plan:
        return plan_model(obj, ctx=self.op.ctx, caches=self.op.caches, now=now, stored_md5=stored_md5)
