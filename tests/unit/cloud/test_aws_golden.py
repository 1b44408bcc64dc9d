"""Golden files of the aws driver's pure output: `tests/golden/cloud/aws/<case>.yaml` (UPDATE_GOLDEN=1 rewrites
them; review changes as diffs). The inputs are the functions below.

Cases: bucket mounts (read-write, read-only), the per-namespace PersistentVolume + claim (with and without a
bucket prefix), the upload build context (Kaniko's URL, buildah's fetched tarball) and builder settings,
ServiceAccount annotations, every GPU placement, and whole children rendered with the aws driver (a GPU
training Job with three bucket mounts, an upload build Job with Kaniko and one with buildah), so the
driver's pieces are also seen in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from substratus_controller import yamlio
from substratus_controller.api.v1 import Model
from substratus_controller.api.v1.types import GPUType
from substratus_controller.cloud.aws import AWSDriver
from substratus_controller.cloud.base import BucketURL, Mount, UnsupportedGPUError
from substratus_controller.constants import BUILDER_BUILDAH, SA_BUILDER, SA_MODELLER, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.render import RenderContext, build_job, modeller_job, service_account, target_image
from tests.golden_files import check_golden, updating

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "cloud" / "aws"
NS = "research"
OIDC = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def driver(bucket: str = "s3://123456789012-substratus-artifacts/substratus") -> AWSDriver:
    return AWSDriver(
        cluster_name="my-cluster",
        artifact_bucket=BucketURL.parse(bucket),
        registry_url="123456789012.dkr.ecr.us-west-2.amazonaws.com/substratus",
        principal="arn:aws:iam::123456789012:role/substratus",
        region="us-west-2",
        oidc_provider=OIDC,
    )


def _mount(mount: Mount, volume: str) -> list[JSON]:
    d = driver()
    url = d.artifact_url(Kind.MODEL, NS, "my-model")
    bucket = d.mount_bucket(url, volume_name=volume, mounts=[mount])
    return [
        {
            "url": str(url),
            "volumes": bucket.volumes,
            "volumeMounts": bucket.mounts,
            "annotations": bucket.annotations,
        }
    ]


def mounts_rw() -> list[JSON]:
    return _mount(Mount("artifacts", "/content/artifacts", False), "artifacts")


def mounts_ro() -> list[JSON]:
    return _mount(Mount("artifacts", "/content/model", True), "model")


def mount_objects() -> list[JSON]:
    return driver().mount_objects(NS)


def mount_objects_no_prefix() -> list[JSON]:
    return driver("s3://123456789012-substratus-artifacts").mount_objects("default")


def build_context() -> list[JSON]:
    d = driver()
    upload = d.upload_url(Kind.MODEL, NS, "my-model", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    context, bucket = d.build_context(upload)
    tarball = d.upload_tarball(upload)
    return [
        {
            "context": context,
            "volumes": bucket.volumes,
            "volumeMounts": bucket.mounts,
            "annotations": bucket.annotations,
            "uploadTarball": {
                "path": tarball.path,
                "volumes": tarball.volume.volumes,
                "volumeMounts": tarball.volume.mounts,
                "initContainers": tarball.init_containers,
            },
            "builderResources": d.builder_resources(),
            "builderInitContainers": d.builder_init_containers(),
            "defaultResources": dataclasses.asdict(d.default_resources()),
        }
    ]


def service_accounts() -> list[JSON]:
    return [service_account(name, NS, driver()) for name in (SA_BUILDER, SA_MODELLER)]


def namespace_permissions() -> list[JSON]:
    """The permission policy of the namespace's role: its prefix and its ECR repositories, nothing else."""
    d = driver()
    return [{"role": d.workload_principal(NS), "policy": d.namespace_permissions(NS)}]


def gpu_placements() -> list[JSON]:
    d = driver()
    out: JSON = {}
    for gpu in [*GPUType, None]:
        key = gpu.value if gpu is not None else "(no type)"
        try:
            placement = d.gpu_placement(gpu.value if gpu is not None else None)
        except UnsupportedGPUError as exc:
            out[key] = {"error": str(exc)}
            continue
        out[key] = {
            "resource": placement.resource,
            "nodeSelector": placement.node_selector,
            "tolerations": list(placement.tolerations),
        }
    return [out]


def training_job() -> list[JSON]:
    model = Model.model_validate(
        {
            "apiVersion": "substratus.ai/v1",
            "kind": "Model",
            "metadata": {
                "name": "llama-2-7b-finetuned",
                "namespace": NS,
                "uid": "1e8b6e2f-0000-4000-8000-0000000000a1",
            },
            "spec": {
                "image": "substratusai/model-trainer-huggingface:v0.1.0",
                "model": {"name": "llama-2-7b"},
                "dataset": {"name": "k8s-instructions"},
                "resources": {"cpu": 8, "memory": 32, "disk": 200, "gpu": {"type": "nvidia-a100-80gb", "count": 2}},
            },
        }
    )
    d = driver()
    ctx = RenderContext(cloud=d)
    job = modeller_job(
        model,
        ctx,
        run_id="6f6f6f6f",
        base_model_url=d.artifact_url(Kind.MODEL, NS, "llama-2-7b"),
        dataset_url=d.artifact_url(Kind.DATASET, NS, "k8s-instructions"),
    )
    return [service_account(SA_MODELLER, NS, d), job]


def upload_build_job(builder: str | None = None) -> list[JSON]:
    model = Model.model_validate(
        {
            "apiVersion": "substratus.ai/v1",
            "kind": "Model",
            "metadata": {"name": "my-model", "namespace": NS, "uid": "1e8b6e2f-0000-4000-8000-0000000000a2"},
            "spec": {"build": {"upload": {"md5Checksum": "0123456789abcdef0123456789abcdef", "requestID": "req-1"}}},
        }
    )
    d = driver()
    target = target_image(model, Kind.MODEL, d)
    ctx = RenderContext(cloud=d) if builder is None else RenderContext(cloud=d, builder=builder)
    return [service_account(SA_BUILDER, NS, d), build_job(model, Kind.MODEL, ctx, target=target, build_id="01234567")]


def buildah_upload_build_job() -> list[JSON]:
    """--builder buildah: `aws s3 cp` of the tarball into the `upload` emptyDir first (IRSA credentials)."""
    return upload_build_job(BUILDER_BUILDAH)


CASES: dict[str, Callable[[], list[JSON]]] = {
    "mounts-rw": mounts_rw,
    "mounts-ro": mounts_ro,
    "mount-objects": mount_objects,
    "mount-objects-no-prefix": mount_objects_no_prefix,
    "build-context": build_context,
    "service-accounts": service_accounts,
    "namespace-permissions": namespace_permissions,
    "gpu-placements": gpu_placements,
    "training-job": training_job,
    "upload-build-job": upload_build_job,
    "buildah-upload-build-job": buildah_upload_build_job,
}


def test_no_stray_golden_files() -> None:
    found = {p.stem for p in GOLDEN.glob("*.yaml")}
    if updating():
        for stale in found - set(CASES):
            (GOLDEN / f"{stale}.yaml").unlink()
        return
    assert found == set(CASES), f"golden files under {GOLDEN}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = yamlio.dump_all(CASES[case]())
    check_golden(text, GOLDEN / f"{case}.yaml", what="aws driver output")


@pytest.mark.parametrize("case", sorted(CASES))
def test_deterministic(case: str) -> None:
    assert CASES[case]() == CASES[case]()
