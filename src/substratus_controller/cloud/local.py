"""The `local` driver: single-node clusters (kind, minikube, the test control plane) and the demo.

- Artifact bucket: a directory on the node, `file:///var/lib/substratus/artifacts` by default; pods mount an
  object's prefix by hostPath (DirectoryOrCreate), subPath per mount (upstream's kind driver, docs/upstream-behaviour.md
  §5.2).
- Upload builds: the builder reads the tarball from a read-only hostPath mount of its directory at /upload:
  Kaniko as `tar:///upload/<md5>.tar.gz`, buildah as the file `/upload/<md5>.tar.gz` (no init container).
- GPUs: placed as `nvidia.com/gpu` with no node selector (upstream kind behaviour). Any type, or none, by
  default; `gpu_types` (LOCAL_GPU_TYPES) restricts the accepted types to what the local nodes have, so that
  other types report UnsupportedGPU instead of pods that never schedule.
- Registry: `registry_url`, or (when "") what the cluster publishes as KEP-1755's
  `kube-public/local-registry-hosting` (cloud/registry_hosting.py, resolved by the CLI at start-up); it must
  be reachable from builder pods and nodes alike (never `localhost`, which in a pod is the pod).
- Identity: nothing to bind.
- Signed upload URLs point at the controller's own upload endpoint (cloud/local_upload_server.py): HMAC-signed, expiring
  after at most 300 s, verified against the body's md5 before the tarball is renamed into place.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from substratus_controller.api.v1.types import GPUType
from substratus_controller.constants import WORKLOAD_GID, WORKLOAD_UID
from substratus_controller.jsontypes import JSON

from .base import (
    GPU_TOLERATION,
    UPLOAD_DIR,
    UPLOAD_VOLUME,
    BucketURL,
    BucketVolume,
    CloudConfigError,
    CloudDriver,
    DefaultResources,
    GPUPlacement,
    Mount,
    StorageError,
    UploadTarball,
)
from .local_upload_server import UploadSigner, read_md5

DEFAULT_ARTIFACT_BUCKET = "file:///var/lib/substratus/artifacts"
DEFAULT_CLUSTER_NAME = "substratus"

_ANY_GPU = GPUPlacement(node_selector={}, tolerations=(GPU_TOLERATION,))


class LocalDriver(CloudDriver):
    name = "local"
    GPU_TABLE = {None: _ANY_GPU, **{t.value: _ANY_GPU for t in GPUType}}

    def __init__(self, *, cluster_name: str = DEFAULT_CLUSTER_NAME, artifact_bucket: BucketURL | None = None,
                 registry_url: str = "", principal: str = "",
                 gpu_types: Sequence[str] | None = None, signer: UploadSigner | None = None) -> None:  # fmt: skip
        bucket = artifact_bucket or BucketURL.parse(DEFAULT_ARTIFACT_BUCKET)
        if bucket.scheme != "file":
            raise CloudConfigError(
                f"--artifact-bucket-url/ARTIFACT_BUCKET_URL must be a file:// URL for the local cloud, got {bucket}"
            )
        super().__init__(
            cluster_name=cluster_name, artifact_bucket=bucket, registry_url=registry_url, principal=principal
        )
        if gpu_types is not None:
            known = {t.value for t in GPUType}
            unknown = sorted(set(gpu_types) - known)
            if unknown:
                raise CloudConfigError(
                    f"--local-gpu-types/LOCAL_GPU_TYPES: unknown GPU types {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(known))}"
                )
            self.gpu_table = {None: _ANY_GPU, **dict.fromkeys(gpu_types, _ANY_GPU)}
        self.signer = signer

    async def signed_upload_url(self, url: BucketURL, *, md5_hex: str, expires_in: int = 300) -> str:
        if self.signer is None:
            raise StorageError("the local upload endpoint is not configured (--upload-public-url)")
        try:
            return self.signer.sign(Path(url.path), md5_hex=md5_hex, expires_in=expires_in)
        except ValueError as exc:
            raise StorageError(f"cannot sign an upload outside the artifact directory: {exc}") from None

    async def object_md5(self, url: BucketURL) -> str | None:
        return await asyncio.to_thread(read_md5, Path(url.path))

    async def prepare_artifacts(self, url: BucketURL, subdirs: Sequence[str]) -> None:
        """Create `<prefix>/<subdir>` writable for the workloads (uid 1000, group 3003) before they start.

        hostPath volumes are not chowned by fsGroup, and the kubelet's DirectoryOrCreate makes root:root 0755
        directories that uid 1000 cannot write. A controller running as root (on the node) makes them
        1000:3003 with mode 2775 (new files keep group 3003); a non-root one (the local overlay's, whose
        artifact root is 1777) makes them 0777. The controller shares the node's artifact directory on a
        single-node cluster (it also receives uploads there) and creates it when missing; when it cannot
        (a read-only filesystem: the directory is not shared with this controller) this is a no-op.
        """
        base = Path(self.artifact_bucket.path)

        def make() -> None:
            try:
                base.mkdir(parents=True, exist_ok=True)
            except OSError:
                return
            for sub in subdirs:
                path = Path(url.path) / sub
                path.mkdir(parents=True, exist_ok=True)
                if os.geteuid() == 0:
                    os.chown(path, WORKLOAD_UID, WORKLOAD_GID)
                    path.chmod(0o2775)
                else:
                    path.chmod(0o777)

        await asyncio.to_thread(make)

    def mount_bucket(self, url: BucketURL, *, volume_name: str, mounts: Sequence[Mount]) -> BucketVolume:
        volume = {"name": volume_name, "hostPath": {"path": url.path, "type": "DirectoryOrCreate"}}
        container_mounts = [
            {
                "name": volume_name,
                "mountPath": m.mount_path,
                "subPath": m.subdir,
                **({"readOnly": True} if m.read_only else {}),
            }
            for m in mounts
        ]
        return BucketVolume(volumes=[volume], mounts=container_mounts)

    def build_context(self, upload: BucketURL) -> tuple[str, BucketVolume]:
        tarball = self.upload_tarball(upload)
        return f"tar://{tarball.path}", tarball.volume

    def upload_tarball(self, upload: BucketURL) -> UploadTarball:
        """The upload's directory on the node, mounted read-only by hostPath at /upload."""
        directory, _, filename = upload.path.rpartition("/")
        volume = {"name": UPLOAD_VOLUME, "hostPath": {"path": directory, "type": "Directory"}}
        mount = {"name": UPLOAD_VOLUME, "mountPath": UPLOAD_DIR, "readOnly": True}
        return UploadTarball(path=f"{UPLOAD_DIR}/{filename}", volume=BucketVolume(volumes=[volume], mounts=[mount]))

    def default_resources(self) -> DefaultResources:
        return DefaultResources(cpu=0, memory=0, disk=0)

    def builder_resources(self) -> JSON:
        return {}
