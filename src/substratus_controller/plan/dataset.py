"""Dataset: build (optional) -> params ConfigMap -> loader Job -> Complete/Ready."""

from __future__ import annotations

from random import Random

from substratus_controller.api.v1.kinds import Dataset
from substratus_controller.constants import SA_DATA_LOADER, Kind
from substratus_controller.render.context import RenderContext
from substratus_controller.render.params import params_configmap
from substratus_controller.render.workloads import loader_job

from .observation import DatasetObservation
from .outcome import Plan
from .prologue import RENDER_ERRORS, adopt_run, begin, invalid_after_build
from .runs import plan_run, run_id


def plan_dataset(seen: DatasetObservation, *, ctx: RenderContext, now: str, rng: Random) -> Plan:
    """The Dataset's Plan (`rng` is unused: a Dataset draws nothing at random)."""
    start = begin(Dataset, Kind.DATASET, seen, ctx=ctx, now=now)
    if isinstance(start, Plan):
        return start
    obj, raw = start.obj, seen.obj
    meta = obj.metadata
    rid = run_id(obj)
    try:
        desired = loader_job(obj, ctx, run_id=rid)
        params = params_configmap(obj, Kind.DATASET)
    except RENDER_ERRORS as exc:
        return invalid_after_build(raw, Kind.DATASET, exc, now, start)
    run = plan_run(obj, raw, job=seen.job, desired=desired, what="data loader", rid=rid, pods=seen.run_pods)
    prefix = ctx.cloud.artifact_url(Kind.DATASET, meta.namespace, meta.name)
    adopt_run(start, run, service_account_name=SA_DATA_LOADER, params=params, prefix=prefix, cloud=ctx.cloud)
    return start.finish(raw, run.condition, now)
