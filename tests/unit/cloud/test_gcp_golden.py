"""Golden files of the gcp driver: `tests/golden/cloud/gcp/<case>.yaml` (UPDATE_GOLDEN=1 rewrites them).

They show exactly what the driver adds to pods (GCS FUSE volumes, mounts and annotations; the builder's
context, init container and resources; the upload tarball buildah reads, fetched by an init container;
ServiceAccount annotations; GPU placement for every type), the settings it derives, and children rendered
with it (an upload build Job with Kaniko and one with buildah, a GPU training Job). Review changes to them
as diffs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from substratus_controller import yamlio
from substratus_controller.api.v1 import Model
from substratus_controller.api.v1.types import GPUType
from substratus_controller.cloud.base import BucketURL, BucketVolume, DriverSettings, Mount, UnsupportedGPUError
from substratus_controller.cloud.gcp import GCPDriver, create_driver
from substratus_controller.constants import BUILDER_BUILDAH, SA_BUILDER, SA_MODELLER, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.render import RenderContext, build_job, modeller_job, service_account, target_image
from tests.golden_files import check_golden

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "cloud" / "gcp"
# Nothing listens on port 9 of loopback: proves no case depends on a metadata server.
NO_METADATA = "127.0.0.1:9"


async def gcp() -> GCPDriver:
    """The driver a GKE user gets from PROJECT_ID, CLUSTER_LOCATION and --cluster-name alone."""
    settings = DriverSettings(cluster_name="prod", env={"PROJECT_ID": "acme-ml", "CLUSTER_LOCATION": "us-central1-a"})
    return await create_driver(settings, metadata_host=NO_METADATA)


def volume(v: BucketVolume) -> JSON:
    return {"volumes": v.volumes, "volumeMounts": v.mounts, "annotations": v.annotations}


async def case_mounts() -> JSON:
    driver = await gcp()
    own = driver.artifact_url(Kind.MODEL, "research", "llama-tuned")
    dataset = driver.artifact_url(Kind.DATASET, "research", "squad")
    return {
        "own-artifacts-read-write": volume(
            driver.mount_bucket(own, volume_name="artifacts", mounts=[Mount("artifacts", "/content/artifacts", False)])
        ),
        "dataset-read-only": volume(
            driver.mount_bucket(dataset, volume_name="dataset", mounts=[Mount("artifacts", "/content/data", True)])
        ),
        "model-in-another-bucket-read-only": volume(
            driver.mount_bucket(
                BucketURL.parse("gs://shared-models/llama"),
                volume_name="model",
                mounts=[Mount("artifacts", "/content/model", True)],
            )
        ),
    }


async def case_build() -> JSON:
    driver = await gcp()
    upload = driver.upload_url(Kind.MODEL, "research", "llama", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    context, bucket = driver.build_context(upload)
    tarball = driver.upload_tarball(upload)
    defaults = driver.default_resources()
    return {
        "context": context,
        **volume(bucket),
        "uploadTarball": {
            "path": tarball.path,
            **volume(tarball.volume),
            "initContainers": tarball.init_containers,
        },
        "initContainers": driver.builder_init_containers(),
        "builderResources": driver.builder_resources(),
        "defaultResources": {"cpu": defaults.cpu, "memory": defaults.memory, "disk": defaults.disk},
    }


async def case_identity() -> JSON:
    driver = await gcp()
    return {
        "serviceAccountAnnotations": driver.service_account_annotations("research"),
        "serviceAccount": service_account(SA_MODELLER, "research", driver),
        "namespaceBindings": driver.namespace_bindings("research"),
    }


async def case_gpu() -> JSON:
    driver = await gcp()
    out: JSON = {}
    for gpu in [t.value for t in GPUType] + [None]:
        key = gpu or "(no type)"
        try:
            placement = driver.gpu_placement(gpu)
        except UnsupportedGPUError as exc:
            out[key] = {"unsupported": str(exc)}
            continue
        out[key] = {
            "resource": placement.resource,
            "nodeSelector": placement.node_selector,
            "tolerations": list(placement.tolerations),
        }
    return out


async def case_settings() -> JSON:
    defaults = await gcp()
    explicit = await create_driver(
        DriverSettings(
            cluster_name="prod",
            artifact_bucket_url="gs://acme-artifacts/substratus",
            registry_url="europe-docker.pkg.dev/acme-ml/images",
            principal="ml-operator@acme-ml.iam.gserviceaccount.com",
            env={"PROJECT_ID": "acme-ml"},
        ),
        metadata_host=NO_METADATA,
    )
    return {"defaults": defaults.describe(), "explicit": explicit.describe()}


UPLOAD_MODEL = {
    "apiVersion": "substratus.ai/v1",
    "kind": "Model",
    "metadata": {"name": "llama", "namespace": "research", "uid": "1e8b6e2f-0000-4000-8000-00000000ca01"},
    "spec": {"build": {"upload": {"md5Checksum": "0123456789abcdef0123456789abcdef", "requestID": "req-1"}}},
}
TRAINED_MODEL = {
    "apiVersion": "substratus.ai/v1",
    "kind": "Model",
    "metadata": {"name": "llama-tuned", "namespace": "research", "uid": "1e8b6e2f-0000-4000-8000-00000000ca02"},
    "spec": {
        "image": "substratusai/model-trainer-huggingface:v0.1.0",
        "model": {"name": "llama"},
        "dataset": {"name": "squad"},
        "resources": {"cpu": 8, "memory": 64, "disk": 200, "gpu": {"type": "nvidia-l4", "count": 2}},
    },
}


async def case_rendered() -> list[JSON]:
    driver = await gcp()
    ctx = RenderContext(cloud=driver)
    upload = Model.model_validate(UPLOAD_MODEL)
    trained = Model.model_validate(TRAINED_MODEL)
    target = target_image(upload, Kind.MODEL, driver)
    return [
        service_account(SA_BUILDER, "research", driver),
        build_job(upload, Kind.MODEL, ctx, target=target, build_id="01234567"),
        modeller_job(
            trained,
            ctx,
            run_id="5e5e5e5e",
            base_model_url=driver.artifact_url(Kind.MODEL, "research", "llama"),
            dataset_url=driver.artifact_url(Kind.DATASET, "research", "squad"),
        ),
    ]


async def case_buildah_upload_build() -> list[JSON]:
    """The upload build with --builder buildah: the Workload Identity check, then `gcloud storage cp` of the
    tarball into the `upload` emptyDir, which the builder mounts read-only; TLS verified (not insecure)."""
    driver = await gcp()
    ctx = RenderContext(cloud=driver, builder=BUILDER_BUILDAH)
    upload = Model.model_validate(UPLOAD_MODEL)
    target = target_image(upload, Kind.MODEL, driver)
    return [
        service_account(SA_BUILDER, "research", driver),
        build_job(upload, Kind.MODEL, ctx, target=target, build_id="01234567"),
    ]


CASES: dict[str, Callable[[], Awaitable[Any]]] = {
    "mounts": case_mounts,
    "build": case_build,
    "identity": case_identity,
    "gpu": case_gpu,
    "settings": case_settings,
    "rendered": case_rendered,
    "buildah-upload-build": case_buildah_upload_build,
}


def test_every_golden_file_has_a_case() -> None:
    files = {p.stem for p in GOLDEN.glob("*.yaml")}
    assert files <= set(CASES), f"golden files without a case under {GOLDEN}: {sorted(files - set(CASES))}"


@pytest.mark.parametrize("name", sorted(CASES))
async def test_golden(name: str) -> None:
    produced = await CASES[name]()
    text = yamlio.dump_all(produced) if isinstance(produced, list) else yamlio.dump(produced)
    check_golden(text, GOLDEN / f"{name}.yaml", what="gcp driver output")


@pytest.mark.parametrize("name", sorted(CASES))
async def test_output_is_deterministic(name: str) -> None:
    assert await CASES[name]() == await CASES[name]()
