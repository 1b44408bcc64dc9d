"""The cloud driver interface: where artifacts live, how pods mount them, image names, GPU placement, identity.

Pure methods (no I/O; renderers call them) return data. Effectful methods are coroutines (reconcilers call
them). Everything cloud-specific sits behind this one interface; drivers do not import each other.

Shared invariants (docs/upstream-behaviour.md §3.4, §3.5):
- a namespace's prefix: `<bucket>/clusters/<cluster>/namespaces/<ns>`, the unit a namespace's cloud identity
  is scoped to (docs/decisions.md §6, docs/iam.md); an object's artifact prefix is
  `<namespace prefix>/<md5("clusters/<cluster>/namespaces/<ns>/<kind>s/<name>")>` (hex, upstream's leaf);
- upload object: `<artifact prefix>/uploads/<md5>.tar.gz`, named by the md5 it was verified against, so the
  builder reads exactly what was checked and a later upload never replaces it; outputs under
  `<artifact prefix>/artifacts/`;
- image of an object: `<registry>/<cluster>-<kind>-<ns>.<name>:<tag>` with the tag made docker-safe; a
  `{namespace}` in the registry URL is replaced by the namespace (one repository per namespace);
- identities: `principal` is the controller's own (signing, binding, repositories); workloads of a namespace
  act as `workload_principal(ns)`, the template `workload_principal_template` with `{namespace}` replaced;
  no two namespaces share one, and the controller's is never a workload's;
- an upload build reads the tarball either as Kaniko's `--context` URL (`build_context`) or as the file
  `/upload/<file>` of a read-only volume `upload` (`upload_tarball`, buildah), never inside /workspace.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlsplit

from substratus_controller.constants import CONTAINER_FETCH_CONTEXT, Kind
from substratus_controller.jsontypes import JSON

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION: JSON = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
UPLOAD_DIR_IN_PREFIX = "uploads"
NAMESPACE_PLACEHOLDER = "{namespace}"
# Where a builder pod reads an uploaded tarball: the volume `upload` mounted read-only at /upload, holding
# the tarball as /upload/<file> (a hostPath on the local cloud, an emptyDir a fetch init container fills on
# the others). Outside the build context /workspace, so a `COPY . .` never copies the tarball itself.
UPLOAD_VOLUME = "upload"
UPLOAD_DIR = "/upload"


class CloudConfigError(ValueError):
    """A driver setting is missing or invalid; the message names the setting (flag and env var)."""


class RegistryNotConfiguredError(RuntimeError):
    """No image registry is usable for builds (the message says why and what to set)."""


NO_REGISTRY = "no image registry is configured: set --registry-url/REGISTRY_URL"


class IdentityError(ValueError):
    """A namespace has no usable cloud identity (the rendered workload principal is invalid for the cloud);
    the message names the namespace, the principal and the rule it breaks."""


class StorageError(RuntimeError):
    """A cloud call (storage, signing or IAM) failed or timed out (retried by the reconciler with backoff).

    Its message never contains a signed URL or a signature."""


@dataclass(frozen=True, slots=True)
class DriverSettings:
    """What every driver is configured from: the common flags plus the raw environment for cloud extras.

    Empty strings mean "not given" (the driver applies its default or auto-configuration).
    """

    cluster_name: str = ""
    artifact_bucket_url: str = ""
    registry_url: str = ""
    principal: str = ""
    workload_principal: str = ""
    env: Mapping[str, str] = field(default_factory=dict)


class UnsupportedGPUError(ValueError):
    """The requested GPU type cannot be placed on this cloud."""

    def __init__(self, gpu_type: str | None, cloud: str, supported: Sequence[str]) -> None:
        self.gpu_type, self.cloud = gpu_type, cloud
        shown = gpu_type or "(no type)"
        super().__init__(
            f"GPU type {shown} is not supported on cloud {cloud}; supported: {', '.join(supported) or 'none'}"
        )


@dataclass(frozen=True, slots=True)
class BucketURL:
    """A location in object storage: `gs://bucket/path`, `s3://bucket/path`, or `file:///abs/path`."""

    scheme: str
    bucket: str
    path: str

    @classmethod
    def parse(cls, url: str) -> BucketURL:
        parts = urlsplit(url)
        if parts.scheme not in ("gs", "s3", "file"):
            raise CloudConfigError(f"unsupported bucket URL {url!r}: expected gs://, s3:// or file://")
        if parts.scheme == "file":
            if parts.netloc or not parts.path.startswith("/"):
                raise CloudConfigError(f"file bucket URL {url!r} must be absolute: file:///some/dir")
            return cls("file", "", parts.path.rstrip("/") or "/")
        if not parts.netloc:
            raise CloudConfigError(f"bucket URL {url!r} has no bucket name")
        return cls(parts.scheme, parts.netloc, parts.path.strip("/"))

    def join(self, *parts: str) -> BucketURL:
        tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
        if self.scheme == "file":
            return BucketURL("file", "", f"{self.path.rstrip('/')}/{tail}" if tail else self.path)
        return BucketURL(self.scheme, self.bucket, f"{self.path}/{tail}".strip("/") if self.path else tail)

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        return f"{self.scheme}://{self.bucket}/{self.path}" if self.path else f"{self.scheme}://{self.bucket}"


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount of an object's bucket prefix: `subdir` of the prefix at `mount_path` in the container."""

    subdir: str
    mount_path: str
    read_only: bool


@dataclass(frozen=True, slots=True)
class BucketVolume:
    """What a pod needs to mount a bucket prefix: volumes, container volumeMounts and pod annotations."""

    volumes: list[JSON]
    mounts: list[JSON]
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadTarball:
    """How a builder container reads an uploaded tarball as a file: its path in the container, what the
    container mounts for it, and the init containers that put it there first (none when it is mounted)."""

    path: str
    volume: BucketVolume
    init_containers: list[JSON] = field(default_factory=list)


def fetched_upload(upload: BucketURL, *, image: str, copy_command: Sequence[str]) -> UploadTarball:
    """The tarball `upload` copied by an init container `[*copy_command, <url>, <dest>]` (exec form, no
    shell) into the emptyDir `UPLOAD_VOLUME`, which the builder then mounts read-only at `UPLOAD_DIR`."""
    dest = f"{UPLOAD_DIR}/{upload.path.rpartition('/')[2]}"
    fetch: JSON = {
        "name": CONTAINER_FETCH_CONTEXT,
        "image": image,
        "command": [*copy_command, str(upload), dest],
        "volumeMounts": [{"name": UPLOAD_VOLUME, "mountPath": UPLOAD_DIR}],
    }
    volume = BucketVolume(
        volumes=[{"name": UPLOAD_VOLUME, "emptyDir": {}}],
        mounts=[{"name": UPLOAD_VOLUME, "mountPath": UPLOAD_DIR, "readOnly": True}],
    )
    return UploadTarball(path=dest, volume=volume, init_containers=[fetch])


@dataclass(frozen=True, slots=True)
class GPUPlacement:
    """How to place a GPU pod: the extended resource, node selector and tolerations."""

    resource: str = GPU_RESOURCE
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[JSON, ...] = (GPU_TOLERATION,)


@dataclass(frozen=True, slots=True)
class DefaultResources:
    """Requests used when an object has no `resources` (cpu cores, memory GiB, disk GiB)."""

    cpu: int
    memory: int
    disk: int


_MD5 = re.compile(r"[0-9a-f]{32}")


def check_workload_template(template: str, *, controller: str) -> None:
    """CloudConfigError unless `template` gives each namespace its own principal, not the controller's."""
    flag = "--workload-principal/WORKLOAD_PRINCIPAL"
    if NAMESPACE_PLACEHOLDER not in template:
        raise CloudConfigError(
            f"{flag} must contain {NAMESPACE_PLACEHOLDER} (one cloud identity per namespace), got {template!r}"
        )
    if template == controller or template.replace(NAMESPACE_PLACEHOLDER, "") == controller:
        raise CloudConfigError(f"{flag} must not name the controller's own principal ({controller})")


_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def docker_tag(raw: str) -> str:
    """A docker tag from a git tag/branch: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (other characters -> `-`)."""
    tag = _TAG_BAD.sub("-", raw)
    if not tag or not (tag[0].isalnum() or tag[0] == "_"):
        tag = f"_{tag}"
    return tag[:128]


def object_hash(cluster: str, kind: Kind, namespace: str, name: str) -> str:
    """md5 of `clusters/<cluster>/namespaces/<ns>/<kind>s/<name>` (the upstream artifact prefix)."""
    ident = f"clusters/{cluster}/namespaces/{namespace}/{kind.plural}/{name}"
    return hashlib.md5(ident.encode(), usedforsecurity=False).hexdigest()


class CloudDriver(ABC):
    """One cloud: storage, mounts, images, GPUs, identities. See module docstring."""

    name: ClassVar[str]
    # GPU type (spec value) -> placement. `None` as a key matches a GPU request without a type.
    GPU_TABLE: ClassVar[dict[str | None, GPUPlacement]]
    # The annotation binding a ServiceAccount to its namespace's cloud principal (None: no identity binding).
    principal_annotation: ClassVar[str | None] = None
    # Whether mount_objects() returns cluster-scoped PersistentVolumes (the controller then caches them).
    USES_PERSISTENT_VOLUMES: ClassVar[bool] = False

    def __init__(self, *, cluster_name: str, artifact_bucket: BucketURL, registry_url: str, principal: str = "",
                 workload_principal_template: str = "") -> None:  # fmt: skip
        self.cluster_name = cluster_name
        self.artifact_bucket = artifact_bucket
        self.registry_url = registry_url.rstrip("/")
        self.registry_problem = ""  # why there is no registry (registry_url ""), for the build condition
        self.principal = principal
        self.workload_principal_template = workload_principal_template
        if self.principal_annotation:
            check_workload_template(workload_principal_template, controller=principal)
        self.gpu_table: dict[str | None, GPUPlacement] = dict(self.GPU_TABLE)

    # ------------------------------------------------------------------------------------------- pure
    def namespace_prefix(self, namespace: str) -> BucketURL:
        """Everything of `namespace` in the artifact bucket: what its cloud identity may read and write."""
        if not namespace:
            raise ValueError("namespace_prefix needs a namespace")
        return self.artifact_bucket.join("clusters", self.cluster_name, "namespaces", namespace)

    def split_namespace(self, url: BucketURL) -> tuple[str, str] | None:
        """(namespace, path below its prefix) of a URL inside a namespace prefix of the artifact bucket, or None."""
        base = self.artifact_bucket
        if url.scheme != base.scheme or url.bucket != base.bucket:
            return None
        root = base.join("clusters", self.cluster_name, "namespaces").path.strip("/")
        path = url.path.strip("/")
        if not path.startswith(f"{root}/"):
            return None
        namespace, _, rest = path[len(root) + 1 :].partition("/")
        return (namespace, rest) if namespace else None

    def artifact_url(self, kind: Kind, namespace: str, name: str) -> BucketURL:
        return self.namespace_prefix(namespace).join(object_hash(self.cluster_name, kind, namespace, name))

    def upload_url(self, kind: Kind, namespace: str, name: str, md5_hex: str) -> BucketURL:
        """Where the upload verified against `md5_hex` is stored (and the builder reads it from)."""
        if not _MD5.fullmatch(md5_hex):
            raise ValueError(f"md5 {md5_hex!r} is not 32 lower-case hex digits")
        return self.artifact_url(kind, namespace, name).join(UPLOAD_DIR_IN_PREFIX, f"{md5_hex}.tar.gz")

    def workload_principal(self, namespace: str) -> str:
        """The cloud principal the workloads of `namespace` act as ("" on a cloud without identities).

        IdentityError when the rendered name is not valid on this cloud (e.g. too long)."""
        if not self.principal_annotation:
            return ""
        principal = self.workload_principal_template.replace(NAMESPACE_PLACEHOLDER, namespace)
        problem = self.principal_problem(principal)
        if problem:
            raise IdentityError(
                f"namespace {namespace} has no usable cloud identity: {principal!r} (from the workload principal "
                f"template {self.workload_principal_template!r}) {problem}"
            )
        return principal

    def principal_problem(self, principal: str) -> str:
        """Why `principal` is not a valid workload principal on this cloud, or "" (drivers refine this)."""
        return "" if principal else "is empty"

    def namespace_registry(self, namespace: str) -> str:
        """The registry prefix of `namespace`'s images (its own repository when the URL holds {namespace})."""
        return self.registry_url.replace(NAMESPACE_PLACEHOLDER, namespace)

    def image_url(self, kind: Kind, namespace: str, name: str, tag: str) -> str:
        """The image a build of this object produces; RegistryNotConfiguredError without a registry.

        `<registry>/<cluster>-<kind>-<namespace>.<name>:<tag>`: a namespace holds no dot, so the first dot
        after the kind ends it and no two objects share an image (upstream's `-` made `team-a/llama` and
        `team/a-llama` push over each other)."""
        if not self.registry_url:
            raise RegistryNotConfiguredError(self.registry_problem or NO_REGISTRY)
        repository = f"{self.cluster_name}-{kind.singular}-{namespace}.{name}"
        return f"{self.namespace_registry(namespace)}/{repository}:{docker_tag(tag)}"

    def gpu_placement(self, gpu_type: str | None) -> GPUPlacement:
        """Placement for a GPU type; raises UnsupportedGPUError for types this cloud cannot place."""
        placement = self.gpu_table.get(gpu_type)
        if placement is None:
            raise UnsupportedGPUError(gpu_type, self.name, sorted(k for k in self.gpu_table if k))
        return placement

    def service_account_annotations(self, namespace: str) -> dict[str, str]:
        """Annotations that bind a workload ServiceAccount of `namespace` to the namespace's principal
        (IdentityError, see `workload_principal`)."""
        if self.principal_annotation:
            return {self.principal_annotation: self.workload_principal(namespace)}
        return {}

    @abstractmethod
    def mount_bucket(self, url: BucketURL, *, volume_name: str, mounts: Sequence[Mount]) -> BucketVolume:
        """Volumes, volumeMounts and pod annotations that mount `mounts` of the prefix `url`."""

    @abstractmethod
    def build_context(self, upload: BucketURL) -> tuple[str, BucketVolume]:
        """Kaniko's `--context` for an uploaded tarball, and what the builder pod must mount to read it."""

    @abstractmethod
    def upload_tarball(self, upload: BucketURL) -> UploadTarball:
        """The uploaded tarball as a file in the builder container (buildah): a mount of it, or an init
        container (volume `UPLOAD_VOLUME`) that copies it to `UPLOAD_DIR`; URLs as arguments, never a shell."""

    @abstractmethod
    def default_resources(self) -> DefaultResources:
        """Requests for objects without `resources`."""

    @abstractmethod
    def builder_resources(self) -> JSON:
        """The image builder container's `resources`."""

    def builder_init_containers(self) -> list[JSON]:
        """Extra init containers the builder needs on this cloud (after the git clone, if any)."""
        return []

    def mount_objects(self, namespace: str) -> list[JSON]:
        """Objects that bucket mounts in `namespace` need (e.g. a PersistentVolume and its claim), shared by
        every workload there and applied before them; none by default."""
        return []

    def namespace_iam(self, namespace: str) -> JSON:
        """What a cloud admin creates for `namespace` (`substratus-controller namespace-iam`, docs/iam.md): the
        principal its workloads act as, the prefix that is theirs, and (drivers add) the grants, no more."""
        return {
            "cloud": self.name,
            "namespace": namespace,
            "principal": self.workload_principal(namespace),
            "artifacts": str(self.namespace_prefix(namespace)),
        }

    def describe(self) -> dict[str, str]:
        """The resolved settings, for the start-up log line (no secrets)."""
        return {
            "cloud": self.name,
            "cluster_name": self.cluster_name,
            "artifact_bucket": str(self.artifact_bucket),
            "registry_url": self.registry_url,
            "principal": self.principal,
            "workload_principal": self.workload_principal_template,
        }

    # ------------------------------------------------------------------------------------------- effects
    @abstractmethod
    async def signed_upload_url(self, url: BucketURL, *, md5_hex: str, expires_in: int = 300) -> str:
        """A URL accepting one `PUT` of the object `url` with `Content-Type: application/octet-stream` and
        `Content-MD5: base64(md5)` (the md5 is bound into the signature), valid `expires_in` <= 300 s."""

    @abstractmethod
    async def object_md5(self, url: BucketURL) -> str | None:
        """The stored object's md5 as lower-case hex, or None when there is no such object."""

    async def prepare_image(self, image: str) -> None:  # noqa: B027 - optional hook
        """Make sure a build can push `image` (e.g. create its registry repository); called before a build."""

    async def prepare_artifacts(self, url: BucketURL, subdirs: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Make `<url>/<subdir>` ready for the pods that will write there (e.g. create it with permissions)."""

    async def bind_identity(self, *, service_account: str, namespace: str) -> None:  # noqa: B027 - optional hook
        """Let the ServiceAccount act as its namespace's principal (called when its ServiceAccount is written)."""

    async def unbind_identity(self, *, service_accounts: Sequence[str], namespace: str) -> None:  # noqa: B027
        """Take back what `bind_identity` granted these ServiceAccounts of `namespace` (its last object went);
        other members of the principal's policy are never touched."""
