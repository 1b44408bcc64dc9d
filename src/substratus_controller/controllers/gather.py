"""Gather: the observation of one object, read from the informer caches (cert-manager's gather step).

Reads only caches, never a live GET; the one read beyond them is storage's md5 of an uploaded build context
that still has to be built (the plan decides when: plan.prologue.upload_to_check). Each kind's observation
holds exactly what its plan reads (plan/observation.py), and of the children only those this object
controls (plan/ownership.py): a same-named object of someone else is never judged, deleted or adopted.
"""

from __future__ import annotations

import asyncio

from substratus_controller.cloud.base import StorageError
from substratus_controller.constants import Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import (
    DatasetObservation,
    ModelObservation,
    NotebookObservation,
    Observation,
    ServerObservation,
)
from substratus_controller.plan.ownership import controlled_by
from substratus_controller.plan.prologue import upload_to_check
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import (
    build_job_name,
    loader_job_name,
    modeller_job_name,
    notebook_pod_name,
    server_name,
)
from substratus_controller.runtime.controller import RetryableError

from .caches import Caches, spec_ref

STORAGE_TIMEOUT = 30.0  # seconds for one storage call (S4: every outbound call has a timeout)


def observe(kind: Kind, raw: JSON, caches: Caches, *, stored_md5: str | None = None) -> Observation:
    """The observation of `raw` (a cached object of `kind`) from the caches."""
    meta = raw["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")

    def own(child: JSON | None) -> JSON | None:
        return child if controlled_by(child, uid) else None  # a same-named object of another: not ours to judge

    build_job = own(caches.jobs.get(ns, build_job_name(kind, name)))
    pods = tuple(caches.pods_of(kind, ns, name, run=False))
    model_name, dataset_name = spec_ref(raw, "model"), spec_ref(raw, "dataset")
    model = caches.models.get(ns, model_name) if model_name else None
    dataset = caches.datasets.get(ns, dataset_name) if dataset_name else None
    if kind is Kind.DATASET:
        job = own(caches.jobs.get(ns, loader_job_name(name)))
        return DatasetObservation(obj=raw, build_job=build_job, pods=pods, stored_md5=stored_md5, job=job)
    if kind is Kind.MODEL:
        job = own(caches.jobs.get(ns, modeller_job_name(name)))
        return ModelObservation(
            obj=raw, build_job=build_job, pods=pods, stored_md5=stored_md5, job=job, base_model=model, dataset=dataset
        )
    if kind is Kind.NOTEBOOK:
        pod = own(caches.pods.get(ns, notebook_pod_name(name)))
        return NotebookObservation(
            obj=raw, build_job=build_job, pods=pods, stored_md5=stored_md5, pod=pod, model=model, dataset=dataset
        )
    deployment = own(caches.deployments.get(ns, server_name(name)))
    return ServerObservation(
        obj=raw, build_job=build_job, pods=pods, stored_md5=stored_md5, deployment=deployment, model=model
    )


async def stored_md5(kind: Kind, raw: JSON, ctx: RenderContext) -> str | None:
    """What storage holds for an upload that still has to be built (None when not needed or absent)."""
    url = upload_to_check(raw, kind, ctx)
    if url is None:
        return None
    try:
        return await asyncio.wait_for(ctx.cloud.object_md5(url), STORAGE_TIMEOUT)
    except (StorageError, TimeoutError) as exc:
        raise RetryableError(f"reading the uploaded build context from storage: {exc}") from None


async def gather(kind: Kind, raw: JSON, caches: Caches, ctx: RenderContext) -> Observation:
    """Everything `kind`'s plan reads about `raw`: caches, and storage when the plan needs it."""
    return observe(kind, raw, caches, stored_md5=await stored_md5(kind, raw, ctx))
