"""The cloud drivers of the renderer tests: the real local, gcp and aws drivers, built offline, and one fake.

`DRIVERS` (the golden cases' `context: {cloud: ...}`, tests/unit/render/golden.py) holds the real drivers,
configured as a user of each cloud would have them, so the golden files show only wiring the product emits:
`local` with the node's registry, `gcp` as `create_driver` completes PROJECT_ID=test-project,
CLUSTER_LOCATION=us-central1-a and --cluster-name test-cluster (GCS FUSE mounts as uid 1000, the Workload
Identity readiness check), `aws` as an EKS cluster in us-west-2 (S3 through the Mountpoint CSI driver's
PersistentVolumes, IRSA role annotations). Rendering is pure: none of them touches the network.

`FakeGKEDriver` is a test double for the unit tests that want a GKE-like cloud with short, fixed values
(test_resources.py, test_builders.py, test_objects.py); no golden case uses it. Its GCS FUSE mounts use the
real driver's options (uid 1000, the workload user).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from substratus_controller.cloud.aws import AWSDriver
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
from substratus_controller.cloud.gcp import GCSFUSE_MOUNT_OPTIONS, GCPDriver
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
                "volumeAttributes": {"bucketName": url.bucket, "mountOptions": GCSFUSE_MOUNT_OPTIONS},
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


def gcp_driver() -> GCPDriver:
    """What `create_driver` derives for project test-project in us-central1-a (see the gcp module docstring)."""
    return GCPDriver(
        cluster_name="test-cluster",
        artifact_bucket=BucketURL.parse("gs://test-project-substratus-artifacts"),
        registry_url="us-central1-docker.pkg.dev/test-project/substratus",
        principal="substratus@test-project.iam.gserviceaccount.com",
        project_id="test-project",
        cluster_location="us-central1-a",
    )


def aws_driver() -> AWSDriver:
    """What `create_driver` derives for account 123456789012 in us-west-2 (AWS_ACCOUNT_ID and AWS_OIDC_PROVIDER
    given, so no STS or EKS call) and --cluster-name test-cluster (see the aws module docstring)."""
    return AWSDriver(
        cluster_name="test-cluster",
        artifact_bucket=BucketURL.parse("s3://123456789012-substratus-artifacts"),
        registry_url="123456789012.dkr.ecr.us-west-2.amazonaws.com/substratus",
        principal="arn:aws:iam::123456789012:role/substratus",
        region="us-west-2",
        oidc_provider="oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
    )


DRIVERS: dict[str, Callable[[], CloudDriver]] = {"local": local_driver, "gcp": gcp_driver, "aws": aws_driver}


def driver(name: str) -> CloudDriver:
    return DRIVERS[name]()
