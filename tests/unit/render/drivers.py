"""Test-only cloud drivers for the renderer tests.

`FakeGKEDriver` behaves like a GKE cluster as far as rendering goes (a `gs://` bucket mounted through a CSI
driver with pod annotations, GPU types placed by node selector, default and builder resources, a builder
init container, uploads fetched by an init container for buildah, a principal annotation on
ServiceAccounts), without depending on the real GCP driver. It
lets the golden files show every path of the renderers that the local driver does not take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from substratus_controller.cloud.base import (
    BucketURL,
    BucketVolume,
    CloudDriver,
    DefaultResources,
    GPUPlacement,
    Mount,
    StorageError,
    UploadTarball,
    fetched_upload,
)
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.jsontypes import JSON

ACCELERATOR = "cloud.google.com/gke-accelerator"


class FakeGKEDriver(CloudDriver):
    name = "fake-gke"
    GPU_TABLE = {
        "nvidia-t4": GPUPlacement(node_selector={ACCELERATOR: "nvidia-tesla-t4"}),
        "nvidia-l4": GPUPlacement(node_selector={ACCELERATOR: "nvidia-l4"}),
        "nvidia-a100": GPUPlacement(node_selector={ACCELERATOR: "nvidia-tesla-a100"}),
    }
    principal_annotation = "iam.gke.io/gcp-service-account"

    def __init__(self) -> None:
        super().__init__(
            cluster_name="test-cluster",
            artifact_bucket=BucketURL.parse("gs://test-artifact-bucket"),
            registry_url="registry.test/substratus",
            principal="substratus@test-project.iam.gserviceaccount.com",
            workload_principal_template="substratus-{namespace}@test-project.iam.gserviceaccount.com",
        )

    def mount_bucket(self, url: BucketURL, *, volume_name: str, mounts: Sequence[Mount]) -> BucketVolume:
        read_only = all(m.read_only for m in mounts)
        volume = {
            "name": volume_name,
            "csi": {
                "driver": "gcsfuse.csi.storage.gke.io",
                "readOnly": read_only,
                "volumeAttributes": {"bucketName": url.bucket, "mountOptions": "implicit-dirs,uid=0,gid=3003"},
            },
        }
        container_mounts = [
            {
                "name": volume_name,
                "mountPath": m.mount_path,
                "subPath": f"{url.path}/{m.subdir}".strip("/"),
                "readOnly": m.read_only,
            }
            for m in mounts
        ]
        return BucketVolume(
            volumes=[volume],
            mounts=container_mounts,
            annotations={"gke-gcsfuse/volumes": "true", "gke-gcsfuse/memory-limit": "800Mi"},
        )

    def build_context(self, upload: BucketURL) -> tuple[str, BucketVolume]:
        return str(upload), BucketVolume(volumes=[], mounts=[])

    def upload_tarball(self, upload: BucketURL) -> UploadTarball:
        return fetched_upload(upload, image="cloud-sdk:alpine", copy_command=["gcloud", "storage", "cp"])

    def default_resources(self) -> DefaultResources:
        return DefaultResources(cpu=2, memory=4, disk=100)

    def builder_resources(self) -> JSON:
        return {"requests": {"cpu": "2", "memory": "12Gi", "ephemeral-storage": "100Gi"}}

    def builder_init_containers(self) -> list[JSON]:
        return [{"name": "workload-identity-check", "image": "cloud-sdk:alpine", "command": ["true"]}]

    async def signed_upload_url(self, url: BucketURL, *, md5_hex: str, expires_in: int = 300) -> str:
        raise StorageError("a rendering test double has no storage")

    async def object_md5(self, url: BucketURL) -> str | None:
        return None


# The local cloud as the golden files show it: its registry given (--registry-url 10.244.0.1:5000, the real
# node's), as a LocalDriver without one reports RegistryNotConfigured for every build.
LOCAL_REGISTRY = "10.244.0.1:5000"


def local_driver() -> LocalDriver:
    return LocalDriver(registry_url=LOCAL_REGISTRY)


DRIVERS: dict[str, Callable[[], CloudDriver]] = {"local": local_driver, "fake-gke": FakeGKEDriver}


def driver(name: str) -> CloudDriver:
    return DRIVERS[name]()
