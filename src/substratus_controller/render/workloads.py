"""The run Jobs of Datasets (loader) and Models (modeller), docs/upstream-behaviour.md §2.3, §2.4 (HEAD).

Invariants:
- Loader Job `<name>-data-loader`: container `load`, SA `data-loader`, backoffLimit 2.
  Modeller Job `<name>-modeller`: container `model`, SA `modeller`, backoffLimit 0 ("don't retry expensive
  Jobs"), or 2 for cheap imports: exactly upstream's heuristic, `resources` set AND `cpu <= 3` AND `gpu`
  set AND `gpu.count == 0` (so it needs an explicit `gpu: {count: 0}`).
- Both: restartPolicy Never, restricted security contexts, labels `role: run` plus
  `substratus.ai/run: <run_id>` on the Job and its pods (a new run never reuses an old Job's identity),
  pod annotation `kubectl.kubernetes.io/default-container` plus the driver's bucket annotations, command
  only when set (otherwise the image's entrypoint), env = spec.env + PARAM_* (sorted).
- Mounts (the container contract, docs/upstream-behaviour.md §11): `params` at /content/params.json (subPath,
  RO); own bucket prefix's `artifacts/` at /content/artifacts (RW); a Model also mounts the dataset's `artifacts/` at
  /content/data and the base model's `artifacts/` at /content/model, both RO. The caller resolves those URLs (the
  driver's URL for the dependency's identity; never its status, which is not a trusted input). A reference whose URL is
  None is not mounted (the caller gates on missing dependencies before starting a run); a URL for a reference the spec
  does not make is a ValueError.
"""

from __future__ import annotations

from substratus_controller.api.v1 import Dataset, Model
from substratus_controller.cloud.base import BucketURL, Mount
from substratus_controller.constants import (
    ARTIFACTS_PATH,
    CONTAINER_LOAD,
    CONTAINER_MODEL,
    DATA_PATH,
    LABEL_RUN,
    MODEL_PATH,
    ROLE_RUN,
    SA_DATA_LOADER,
    SA_MODELLER,
    Kind,
)
from substratus_controller.jsontypes import JSON

from ._pod import PodVolumes, workload_pod
from .bodies import child_metadata, identity
from .context import RenderContext
from .labels import Parent, check_label_value, labels
from .names import loader_job_name, modeller_job_name

ARTIFACTS_SUBDIR = "artifacts"
ARTIFACTS_VOLUME = "artifacts"
DATASET_VOLUME = "dataset"
MODEL_VOLUME = "model"
LOADER_BACKOFF_LIMIT = 2
MODELLER_BACKOFF_LIMIT = 0
CHEAP_IMPORT_BACKOFF_LIMIT = 2
CHEAP_IMPORT_MAX_CPU = 3


def own_artifacts(volumes: PodVolumes, obj: Parent, kind: Kind, ctx: RenderContext) -> None:
    """Mount the object's own bucket prefix `artifacts/` read-write at /content/artifacts."""
    name, namespace = identity(obj, kind)
    volumes.add_bucket(
        ctx,
        ctx.cloud.artifact_url(kind, namespace, name),
        volume=ARTIFACTS_VOLUME,
        mount=Mount(ARTIFACTS_SUBDIR, ARTIFACTS_PATH, False),
    )


def dependency_mounts(
    volumes: PodVolumes,
    obj: Parent,
    ctx: RenderContext,
    *,
    model_ref: str | None,
    model_url: BucketURL | None,
    dataset_ref: str | None,
    dataset_url: BucketURL | None,
) -> None:
    """Mount the referenced Dataset at /content/data and Model at /content/model, both read-only."""
    for ref, url, field in ((dataset_ref, dataset_url, "dataset"), (model_ref, model_url, "model")):
        if ref is None and url is not None:
            raise ValueError(f"{obj.kind} {obj.metadata.name}: a {field} URL was passed but spec.{field} is not set")
    if dataset_url is not None:
        volumes.add_bucket(ctx, dataset_url, volume=DATASET_VOLUME, mount=Mount(ARTIFACTS_SUBDIR, DATA_PATH, True))
    if model_url is not None:
        volumes.add_bucket(ctx, model_url, volume=MODEL_VOLUME, mount=Mount(ARTIFACTS_SUBDIR, MODEL_PATH, True))


def _run_job(
    obj: Parent,
    kind: Kind,
    ctx: RenderContext,
    *,
    job_name: str,
    container: str,
    service_account: str,
    backoff_limit: int,
    run_id: str,
    volumes: PodVolumes,
) -> JSON:
    name, _ = identity(obj, kind)
    run_labels = {LABEL_RUN: check_label_value(LABEL_RUN, run_id)}
    annotations, pod_spec = workload_pod(
        obj,
        ctx,
        container=container,
        service_account=service_account,
        volumes=volumes,
        command=obj.spec.command,
        restart_policy="Never",
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(obj, kind, name=job_name, role=ROLE_RUN, extra_labels=run_labels),
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": {**labels(kind, name, ROLE_RUN), **run_labels}, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def loader_job(dataset: Dataset, ctx: RenderContext, *, run_id: str) -> JSON:
    """The Job `<name>-data-loader` that loads a Dataset into its bucket prefix."""
    name, _ = identity(dataset, Kind.DATASET)
    volumes = PodVolumes()
    volumes.add_params(Kind.DATASET, name)
    own_artifacts(volumes, dataset, Kind.DATASET, ctx)
    return _run_job(
        dataset,
        Kind.DATASET,
        ctx,
        job_name=loader_job_name(name),
        container=CONTAINER_LOAD,
        service_account=SA_DATA_LOADER,
        backoff_limit=LOADER_BACKOFF_LIMIT,
        run_id=run_id,
        volumes=volumes,
    )


def modeller_backoff_limit(model: Model) -> int:
    """0, or 2 for "cheap import" Jobs (upstream's heuristic, see module docstring)."""
    res = model.spec.resources
    cheap = res is not None and res.cpu <= CHEAP_IMPORT_MAX_CPU and res.gpu is not None and res.gpu.count == 0
    return CHEAP_IMPORT_BACKOFF_LIMIT if cheap else MODELLER_BACKOFF_LIMIT


def modeller_job(
    model: Model,
    ctx: RenderContext,
    *,
    run_id: str,
    base_model_url: BucketURL | None,
    dataset_url: BucketURL | None,
) -> JSON:
    """The Job `<name>-modeller` that imports or trains a Model into its bucket prefix."""
    name, _ = identity(model, Kind.MODEL)
    volumes = PodVolumes()
    volumes.add_params(Kind.MODEL, name)
    own_artifacts(volumes, model, Kind.MODEL, ctx)
    dependency_mounts(
        volumes,
        model,
        ctx,
        model_ref=model.spec.model.name if model.spec.model else None,
        model_url=base_model_url,
        dataset_ref=model.spec.dataset.name if model.spec.dataset else None,
        dataset_url=dataset_url,
    )
    return _run_job(
        model,
        Kind.MODEL,
        ctx,
        job_name=modeller_job_name(name),
        container=CONTAINER_MODEL,
        service_account=SA_MODELLER,
        backoff_limit=modeller_backoff_limit(model),
        run_id=run_id,
        volumes=volumes,
    )
