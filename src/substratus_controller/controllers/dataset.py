"""Dataset: build (optional) -> params ConfigMap -> loader Job -> Complete/Ready (pure plan + reconciler)."""

from __future__ import annotations

from substratus_controller.api.v1.kinds import Dataset
from substratus_controller.constants import SA_DATA_LOADER, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import loader_job_name
from substratus_controller.render.params import params_configmap
from substratus_controller.render.workloads import loader_job

from .engine import Caches, KindReconciler, Plan
from .plans import adopt_run, begin, invalid_plan, render_errors, status_of
from .runs import plan_run, run_id


def plan_dataset(raw: JSON, *, ctx: RenderContext, caches: Caches, now: str, stored_md5: str | None = None) -> Plan:
    start = begin(Dataset, Kind.DATASET, raw, ctx=ctx, caches=caches, now=now, stored_md5=stored_md5)
    if isinstance(start, Plan):
        return start
    obj, plan, build, extra = start.obj, start.plan, start.build, start.extra
    meta = obj.metadata
    rid = run_id(obj)
    try:
        desired = loader_job(obj, ctx, run_id=rid)
        params = params_configmap(obj, Kind.DATASET)
    except render_errors() as exc:
        return invalid_plan(raw, Kind.DATASET, exc, now, build=build)
    job = caches.jobs.get(meta.namespace, loader_job_name(meta.name))
    pods = caches.pods_of(Kind.DATASET, meta.namespace, meta.name)
    run = plan_run(obj, raw, job=job, desired=desired, what="data loader", rid=rid, pods=pods)
    prefix = ctx.cloud.artifact_url(Kind.DATASET, meta.namespace, meta.name)
    adopt_run(plan, run, service_account=SA_DATA_LOADER, params=params, prefix=prefix)
    plan.status = status_of(raw, Kind.DATASET, main=run.condition, blockers=build.blockers, now=now, extra=extra)
    return plan


class DatasetReconciler(KindReconciler):
    kind = Kind.DATASET

    def plan(self, obj: JSON, now: str, stored_md5: str | None = None) -> Plan:
        return plan_dataset(obj, ctx=self.op.ctx, caches=self.op.caches, now=now, stored_md5=stored_md5)
