"""The `gcp` driver: GKE with Cloud Storage artifacts, GCS FUSE mounts, Workload Identity, Artifact Registry.

Imported only when `--cloud gcp` is selected; it is the one module that imports google-cloud-storage and
google-auth.

Settings (docs/decisions.md §4, docs/upstream-behaviour.md §5.1): CLUSTER_NAME, ARTIFACT_BUCKET_URL, REGISTRY_URL,
PRINCIPAL and WORKLOAD_PRINCIPAL come from the common flags (`DriverSettings`); PROJECT_ID and CLUSTER_LOCATION
from the environment.
`create_driver` fills in what is missing from the GCE metadata server (GCE_METADATA_HOST, default
`metadata.google.internal`; header `Metadata-Flavor: Google`; ~1 s timeouts, asked only when something is
missing, so start-up never hangs off GCP): project-id and the instance attributes cluster-name and
cluster-location. Defaults, exactly upstream's: REGISTRY_URL `<region>-docker.pkg.dev/<project>/substratus`
(region = first two dash parts of the location), ARTIFACT_BUCKET_URL `gs://<project>-substratus-artifacts`,
PRINCIPAL (the controller's own) `substratus@<project>.iam.gserviceaccount.com`; ours: WORKLOAD_PRINCIPAL
`substratus-{namespace}@<project>.iam.gserviceaccount.com` (one Google service account per namespace; its
account id must be 6-30 characters, so namespaces longer than 19 characters need a shorter template).
Whatever is still missing or invalid is reported in one CloudConfigError naming the flag and/or environment variable.

Endpoints can be redirected (tests, private endpoints): STORAGE_EMULATOR_HOST (Cloud Storage, anonymous
access; signed URLs then point at it too), GCP_IAM_ENDPOINT (default https://iam.googleapis.com) and
GCP_IAM_CREDENTIALS_ENDPOINT (default https://iamcredentials.googleapis.com), all read from `settings.env`.

Invariants:
- Pure methods return fresh data and never emit false or empty values (`readOnly` only when true).
- GCS FUSE CSI mounts as upstream (docs/upstream-behaviour.md §5.2: pod annotations, driver, bucketName, subPath
  `<path>/<subdir>`), except the mount options: upstream's `uid=0,gid=3003` made files owned by root with default modes,
  so our workload pods (uid 1000, gid 3003, render/security.py) could not write their RW mounts. We use
  `implicit-dirs,uid=1000,gid=3003,file-mode=664,dir-mode=775`: the workload user owns everything it sees,
  and group 3003 (everyone's fsGroup) may write too.
- GPU placement from one table (node selector `cloud.google.com/gke-accelerator`); every GPU pod tolerates
  `nvidia.com/gpu` and GKE's spot taint (upstream adds the latter so node auto-provisioning may create spot
  nodes). `nvidia-a10g` (AWS only) and GPUs without a type are unsupported.
- Effects run the blocking SDK calls in a worker thread under a timeout (30 s by default, the SDK's own
  retries bounded below it); every failure is a StorageError whose message, like every log line, never
  contains a signed URL or a signature.
- Signed upload URLs: V4, `PUT`, Content-Type `application/octet-stream` and Content-MD5 bound into the
  signature, expiry at most 300 s. Signing uses the credentials' private key when they have one (a key
  file), else IAM Credentials `signBlob` as the credentials' service account (Workload Identity on GKE).
- Upload builds: Kaniko reads the `gs://` tarball itself; for buildah an init container `fetch-context`
  (the cloud-sdk image, after the Workload Identity readiness check) runs `gcloud storage cp <gs url>
  /upload/<file>` into an emptyDir that the builder mounts read-only.
- `bind_identity` is idempotent: it writes the namespace principal's IAM policy only when the Workload
  Identity member is missing, with the read etag (one retry on a concurrent change, HTTP 409);
  `unbind_identity` removes exactly the members it names, the same way. Both act on the namespace's own
  principal, never the controller's.
- `namespace_bindings` renders the IAM a namespace principal needs (docs/iam.md): object admin on the
  bucket limited by an IAM condition to the namespace's prefix, and writer on the namespace's Artifact
  Registry repository when REGISTRY_URL holds `{namespace}`.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import google.auth
import google.auth.credentials
import google.auth.crypt
import google.auth.exceptions
import structlog
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as AuthRequest
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from substratus_controller.constants import WORKLOAD_GID, WORKLOAD_SERVICE_ACCOUNTS, WORKLOAD_UID
from substratus_controller.jsontypes import JSON

from .base import (
    GPU_TOLERATION,
    NAMESPACE_PLACEHOLDER,
    BucketURL,
    BucketVolume,
    CloudConfigError,
    CloudDriver,
    DefaultResources,
    DriverSettings,
    GPUPlacement,
    Mount,
    StorageError,
    UploadTarball,
    fetched_upload,
)

log = structlog.get_logger("substratus.cloud.gcp")
T = TypeVar("T")

# ----------------------------------------------------------------------------------------------- settings
ENV_PROJECT_ID = "PROJECT_ID"
ENV_CLUSTER_LOCATION = "CLUSTER_LOCATION"
ENV_METADATA_HOST = "GCE_METADATA_HOST"
ENV_STORAGE_EMULATOR_HOST = "STORAGE_EMULATOR_HOST"
ENV_IAM_ENDPOINT = "GCP_IAM_ENDPOINT"
ENV_IAM_CREDENTIALS_ENDPOINT = "GCP_IAM_CREDENTIALS_ENDPOINT"

DEFAULT_METADATA_HOST = "metadata.google.internal"
METADATA_TIMEOUT = 1.0
METADATA_PATHS = {
    "project_id": "project/project-id",
    "cluster_name": "instance/attributes/cluster-name",
    "cluster_location": "instance/attributes/cluster-location",
}
IAM_ENDPOINT = "https://iam.googleapis.com"
IAM_CREDENTIALS_ENDPOINT = "https://iamcredentials.googleapis.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

CALL_TIMEOUT = 30.0
MAX_SIGNED_URL_SECONDS = 300
UPLOAD_CONTENT_TYPE = "application/octet-stream"

# ----------------------------------------------------------------------------------------------- pods
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
# uid/gid of the workload pods (render/security.py; the cloud layer may not import render).
GCSFUSE_MOUNT_OPTIONS = f"implicit-dirs,uid={WORKLOAD_UID},gid={WORKLOAD_GID},file-mode=664,dir-mode=775"
GCSFUSE_ANNOTATIONS = {
    "gke-gcsfuse/volumes": "true",
    "gke-gcsfuse/cpu-limit": "2",
    "gke-gcsfuse/memory-limit": "800Mi",
    "gke-gcsfuse/ephemeral-storage-limit": "100Gi",
}

PRINCIPAL_ANNOTATION = "iam.gke.io/gcp-service-account"
WORKLOAD_IDENTITY_ROLE = "roles/iam.workloadIdentityUser"

ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
SPOT_TOLERATION: JSON = {
    "key": "cloud.google.com/gke-spot",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}
GKE_ACCELERATORS = {
    "nvidia-t4": "nvidia-tesla-t4",
    "nvidia-l4": "nvidia-l4",
    "nvidia-a100": "nvidia-tesla-a100",
    "nvidia-a100-80gb": "nvidia-a100-80gb",
    "nvidia-h100": "nvidia-h100-80gb",
    "nvidia-v100": "nvidia-tesla-v100",
}

READINESS_CHECK_CONTAINER = "gcp-workload-identity-readiness-check"
READINESS_CHECK_IMAGE = "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"
READINESS_CHECK_TOKEN_URL = "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token"
# The token goes to /dev/null: it must not end up in the pod's log.
READINESS_CHECK_SCRIPT = f"""\
if ! curl -sS -o /dev/null -H 'Metadata-Flavor: Google' --retry 30 --retry-connrefused --retry-max-time 60 \\
    --connect-timeout 3 --fail --retry-all-errors '{READINESS_CHECK_TOKEN_URL}'; then
  echo 'GKE Workload Identity is not ready: the metadata server gave no access token within 60 seconds.' >&2
  echo 'Check that the node pool has the GKE metadata server enabled and that the ServiceAccount is bound' >&2
  echo 'to its Google service account (annotation {PRINCIPAL_ANNOTATION}).' >&2
  exit 1
fi
"""

_SIGNATURE = re.compile(r"(?i)(x-goog-signature=)[^&\s'\"]*")
_ACCOUNT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")


def _scrub(text: str) -> str:
    """Text with any V4 signature redacted (defence in depth: signed URLs never reach messages or logs)."""
    return _SIGNATURE.sub(r"\1REDACTED", text)


def _endpoint(value: str) -> str:
    """`host:port` or a URL -> a URL without a trailing slash (http:// when no scheme is given)."""
    value = value.strip().rstrip("/")
    return value if "://" in value else f"http://{value}"


def _region(location: str) -> str:
    """`us-central1-a` / `us-central1` -> `us-central1` (upstream: the first two dash-separated parts)."""
    parts = location.split("-")
    if len(parts) < 2 or not all(parts[:2]):
        raise CloudConfigError(
            f"CLUSTER_LOCATION {location!r} is not a GCP region or zone (expected e.g. us-central1 or "
            "us-central1-a), so the default --registry-url/REGISTRY_URL cannot be derived: set a valid "
            "CLUSTER_LOCATION or --registry-url/REGISTRY_URL"
        )
    return f"{parts[0]}-{parts[1]}"


class GCPDriver(CloudDriver):
    """GKE + Cloud Storage + Artifact Registry (see module docstring)."""

    name = "gcp"
    GPU_TABLE = {
        gpu: GPUPlacement(node_selector={ACCELERATOR_LABEL: accelerator}, tolerations=(GPU_TOLERATION, SPOT_TOLERATION))
        for gpu, accelerator in GKE_ACCELERATORS.items()
    }
    principal_annotation = PRINCIPAL_ANNOTATION

    def __init__(
        self,
        *,
        cluster_name: str,
        artifact_bucket: BucketURL,
        registry_url: str,
        principal: str,
        project_id: str,
        workload_principal: str = "",
        cluster_location: str = "",
        storage_endpoint: str | None = None,
        iam_endpoint: str = IAM_ENDPOINT,
        iam_credentials_endpoint: str = IAM_CREDENTIALS_ENDPOINT,
        credentials: Any = None,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        if artifact_bucket.scheme != "gs":
            raise CloudConfigError(
                "--artifact-bucket-url/ARTIFACT_BUCKET_URL must be a gs:// URL for the gcp cloud, "
                f"got {artifact_bucket}"
            )
        if "@" not in principal:
            raise CloudConfigError(
                f"--principal/PRINCIPAL must be a Google service account email for the gcp cloud, got {principal!r}"
            )
        super().__init__(
            cluster_name=cluster_name,
            artifact_bucket=artifact_bucket,
            registry_url=registry_url,
            principal=principal,
            workload_principal_template=workload_principal or default_workload_principal(project_id),
        )
        self.project_id = project_id
        self.cluster_location = cluster_location
        self.storage_endpoint = _endpoint(storage_endpoint) if storage_endpoint else None
        self.iam_endpoint = _endpoint(iam_endpoint)
        self.iam_credentials_endpoint = _endpoint(iam_credentials_endpoint)
        self.call_timeout = call_timeout
        self._credentials: Any = credentials
        self._client: Any = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------- pure
    def describe(self) -> dict[str, str]:
        out = super().describe()
        out["project_id"] = self.project_id
        if self.cluster_location:
            out["cluster_location"] = self.cluster_location
        if self.storage_endpoint:
            out["storage_endpoint"] = self.storage_endpoint
        return out

    def principal_problem(self, principal: str) -> str:
        account, at, domain = principal.partition("@")
        if not at or not domain.endswith(".iam.gserviceaccount.com"):
            return "is not a Google service account email (<id>@<project>.iam.gserviceaccount.com)"
        if not _ACCOUNT_ID.fullmatch(account):
            return (
                f"has the account id {account!r}: it must be 6-30 characters, lower-case letters, digits and "
                "dashes, starting with a letter"
            )
        if principal == self.principal:
            return "is the controller's own principal"
        return ""

    def namespace_bindings(self, namespace: str) -> JSON:
        """The IAM bindings the namespace's principal needs, no more (docs/iam.md): the storage binding is
        for the artifact bucket's policy, the registry binding for the namespace's repository."""
        member = f"serviceAccount:{self.workload_principal(namespace)}"
        prefix = self.namespace_prefix(namespace)
        objects = f"projects/_/buckets/{prefix.bucket}/objects/{prefix.path}/"
        out: JSON = {
            "principal": self.workload_principal(namespace),
            # what bind_identity grants on the principal, as the ServiceAccounts are created
            "workloadIdentityUser": sorted(self._member(namespace, sa) for sa in WORKLOAD_SERVICE_ACCOUNTS),
            "bucket": {
                "bucket": prefix.bucket,
                "binding": {
                    "role": "roles/storage.objectUser",
                    "members": [member],
                    "condition": {
                        "title": f"substratus-{namespace}",
                        "description": f"only the objects of namespace {namespace}",
                        "expression": (
                            f'resource.type == "storage.googleapis.com/Bucket" || resource.name.startsWith("{objects}")'
                        ),
                    },
                },
            },
        }
        if NAMESPACE_PLACEHOLDER in self.registry_url:
            repository = self.namespace_registry(namespace)
            out["registry"] = {
                "repository": repository,
                "binding": {"role": "roles/artifactregistry.writer", "members": [member]},
            }
        return out

    def namespace_iam(self, namespace: str) -> JSON:
        return {**super().namespace_iam(namespace), "bindings": self.namespace_bindings(namespace)}

    def mount_bucket(self, url: BucketURL, *, volume_name: str, mounts: Sequence[Mount]) -> BucketVolume:
        """One GCS FUSE CSI volume for the bucket; one volumeMount per mount, subPath `<path>/<subdir>`."""
        self._check_url(url, what="mount")
        if not mounts:
            raise ValueError(f"mount_bucket({url}): no mounts")
        csi: JSON = {"driver": GCSFUSE_DRIVER}
        if all(m.read_only for m in mounts):
            csi["readOnly"] = True
        csi["volumeAttributes"] = {"bucketName": url.bucket, "mountOptions": GCSFUSE_MOUNT_OPTIONS}
        container_mounts: list[JSON] = []
        for m in mounts:
            mount: JSON = {"name": volume_name, "mountPath": m.mount_path}
            sub_path = url.join(m.subdir).path
            if sub_path:
                mount["subPath"] = sub_path
            if m.read_only:
                mount["readOnly"] = True
            container_mounts.append(mount)
        return BucketVolume(
            volumes=[{"name": volume_name, "csi": csi}],
            mounts=container_mounts,
            annotations=dict(GCSFUSE_ANNOTATIONS),
        )

    def build_context(self, upload: BucketURL) -> tuple[str, BucketVolume]:
        """Kaniko reads the tarball straight from Cloud Storage with the builder's Workload Identity."""
        self._check_url(upload, what="build from")
        return str(upload), BucketVolume(volumes=[], mounts=[])

    def upload_tarball(self, upload: BucketURL) -> UploadTarball:
        """For buildah: `gcloud storage cp` of the upload into the pod, with the builder's Workload Identity
        (the init container runs after the readiness check, see `builder_init_containers`)."""
        self._check_url(upload, what="build from")
        return fetched_upload(upload, image=READINESS_CHECK_IMAGE, copy_command=["gcloud", "storage", "cp"])

    def default_resources(self) -> DefaultResources:
        return DefaultResources(cpu=2, memory=4, disk=100)

    def builder_resources(self) -> JSON:
        return {"requests": {"cpu": "2", "memory": "12Gi", "ephemeral-storage": "100Gi"}}

    def builder_init_containers(self) -> list[JSON]:
        """Wait until Workload Identity hands out tokens: Kaniko's push check fails in a pod's first seconds."""
        return [
            {
                "name": READINESS_CHECK_CONTAINER,
                "image": READINESS_CHECK_IMAGE,
                "command": ["/bin/bash", "-c", READINESS_CHECK_SCRIPT],
            }
        ]

    def _check_url(self, url: BucketURL, *, what: str) -> None:
        if url.scheme != "gs" or not url.bucket:
            raise ValueError(f"the gcp cloud cannot {what} {url}: not a gs:// URL")

    # ------------------------------------------------------------------------------------------- effects
    async def signed_upload_url(self, url: BucketURL, *, md5_hex: str, expires_in: int = 300) -> str:
        self._check_url(url, what="sign an upload to")
        if not url.path:
            raise ValueError(f"cannot sign an upload to {url}: no object name")
        try:
            digest = bytes.fromhex(md5_hex)
        except ValueError:
            digest = b""
        if len(digest) != 16:
            raise ValueError(f"md5 {md5_hex!r} is not 32 hex characters")
        content_md5 = base64.b64encode(digest).decode("ascii")
        seconds = max(1, min(int(expires_in), MAX_SIGNED_URL_SECONDS))

        def sign() -> str:
            blob = self._storage().bucket(url.bucket).blob(url.path)
            return str(
                blob.generate_signed_url(
                    version="v4",
                    expiration=timedelta(seconds=seconds),
                    method="PUT",
                    content_type=UPLOAD_CONTENT_TYPE,
                    content_md5=content_md5,
                    credentials=self._signing_credentials(),
                )
            )

        # Exceptions are raised without their cause: nothing after signing may carry the URL to a log.
        signed = await self._call(f"signing an upload URL for {url}", sign, chain=False)
        log.info("signed upload URL created", object=str(url), expires_in=seconds)
        return signed

    async def object_md5(self, url: BucketURL) -> str | None:
        self._check_url(url, what="read")
        if not url.path:
            raise ValueError(f"cannot read {url}: no object name")
        timeout = self.call_timeout

        def read() -> str | None:
            bucket = self._storage().bucket(url.bucket)
            blob = bucket.get_blob(url.path, timeout=timeout / 3, retry=DEFAULT_RETRY.with_timeout(timeout * 0.6))
            if blob is None:
                return None
            if not blob.md5_hash:
                raise StorageError(f"object {url} has no MD5 (a composite object?); upload it in one PUT")
            return base64.b64decode(blob.md5_hash).hex()

        return await self._call(f"reading the metadata of {url}", read)

    async def bind_identity(self, *, service_account: str, namespace: str) -> None:
        """Grant `<project>.svc.id.goog[<ns>/<ksa>]` roles/iam.workloadIdentityUser on the namespace's
        principal, if missing."""
        principal = self.workload_principal(namespace)
        member = self._member(namespace, service_account)
        written = await self._edit_policy(
            principal,
            f"binding {namespace}/{service_account} to {principal}",
            lambda policy: _add_member(policy, WORKLOAD_IDENTITY_ROLE, member),
        )
        log.info("workload identity binding", principal=principal, member=member,
                 result="added" if written else "already present")  # fmt: skip

    async def unbind_identity(self, *, service_accounts: Sequence[str], namespace: str) -> None:
        """Remove the Workload Identity members of these ServiceAccounts from the namespace's principal."""
        principal = self.workload_principal(namespace)
        members = {self._member(namespace, sa) for sa in service_accounts}
        written = await self._edit_policy(
            principal,
            f"unbinding namespace {namespace} from {principal}",
            lambda policy: _remove_members(policy, WORKLOAD_IDENTITY_ROLE, members),
        )
        log.info("workload identity unbinding", principal=principal, members=sorted(members),
                 result="removed" if written else "already absent")  # fmt: skip

    def _member(self, namespace: str, service_account: str) -> str:
        return f"serviceAccount:{self.project_id}.svc.id.goog[{namespace}/{service_account}]"

    async def _edit_policy(self, principal: str, what: str, change: Callable[[JSON], bool]) -> bool:
        """Read the principal's IAM policy, `change` it in place, write it back with the read etag when
        `change` says it changed (one retry on a concurrent change); whether it was written."""
        resource = f"{self.iam_endpoint}/v1/projects/-/serviceAccounts/{quote(principal, safe='@.')}"

        def edit() -> bool:
            with AuthorizedSession(self._creds()) as session:  # type: ignore[no-untyped-call]
                for attempt in (1, 2):
                    response = session.post(
                        f"{resource}:getIamPolicy",
                        params={"options.requestedPolicyVersion": "3"},
                        timeout=self.call_timeout / 3,
                    )
                    if response.status_code != 200:
                        raise StorageError(f"getIamPolicy: HTTP {response.status_code}: {_scrub(response.text[:300])}")
                    policy = response.json()
                    if not change(policy):
                        return False
                    response = session.post(
                        f"{resource}:setIamPolicy", json={"policy": policy}, timeout=self.call_timeout / 3
                    )
                    if response.status_code == 200:
                        return True
                    if response.status_code == 409 and attempt == 1:
                        log.info("IAM policy changed concurrently, retrying", principal=principal)
                        continue
                    raise StorageError(f"setIamPolicy: HTTP {response.status_code}: {_scrub(response.text[:300])}")
            raise AssertionError("unreachable")

        return await self._call(what, edit)

    # ------------------------------------------------------------------------------------------- helpers
    async def _call(self, what: str, fn: Callable[[], T], *, chain: bool = True) -> T:
        """Run blocking `fn` in a thread under the timeout; any failure becomes a StorageError."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), self.call_timeout)
        except StorageError as exc:
            error = StorageError(f"{what}: {_scrub(str(exc))}")
            cause: BaseException | None = exc
        except TimeoutError as exc:
            error = StorageError(f"{what}: timed out after {self.call_timeout:g} s")
            cause = exc
        except Exception as exc:
            error = StorageError(f"{what}: {type(exc).__name__}: {_scrub(str(exc))[:500]}")
            cause = exc
        raise error from (cause if chain else None)

    def _creds(self) -> Any:
        """The credentials: injected, else Application Default Credentials (resolved once, in a thread)."""
        with self._lock:
            if self._credentials is None:
                try:
                    self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
                except google.auth.exceptions.DefaultCredentialsError as exc:
                    raise StorageError(f"no Google credentials found: {exc}") from exc
            return self._credentials

    def _storage(self) -> Any:
        """The Cloud Storage client (created once; anonymous against STORAGE_EMULATOR_HOST)."""
        with self._lock:
            if self._client is None:
                if self.storage_endpoint:
                    self._client = storage.Client(
                        project=self.project_id,
                        credentials=google.auth.credentials.AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        client_options={"api_endpoint": self.storage_endpoint},
                    )
                else:
                    self._client = storage.Client(project=self.project_id, credentials=self._creds())
            return self._client

    def _signing_credentials(self) -> Any:
        """Credentials that can sign: a private key's own, else IAM signBlob as their service account."""
        creds = self._creds()
        if isinstance(creds, google.auth.credentials.Signing):
            return creds
        email = getattr(creds, "service_account_email", None)
        if not email or email == "default":
            # Compute Engine / Workload Identity credentials learn their email on refresh.
            if not creds.valid:
                creds.refresh(AuthRequest())
            email = getattr(creds, "service_account_email", None)
        if not email or email == "default":
            email = self.principal
        return _IAMSigningCredentials(creds, email, self.iam_credentials_endpoint, self.call_timeout / 3)


def default_workload_principal(project: str) -> str:
    """The default workload principal template: `substratus-{namespace}@<project>.iam.gserviceaccount.com`."""
    return f"substratus-{{namespace}}@{project}.iam.gserviceaccount.com"


def _remove_members(policy: JSON, role: str, members: set[str]) -> bool:
    """Remove `members` from the unconditional bindings of `role`; drop a binding left empty. Whether any
    member was removed (other members and roles are kept as they are)."""
    removed = False
    kept: list[JSON] = []
    for binding in policy.get("bindings") or []:
        if binding.get("role") == role and "condition" not in binding:
            left = [m for m in binding.get("members") or [] if m not in members]
            removed = removed or len(left) != len(binding.get("members") or [])
            if not left:
                continue
            kept.append({**binding, "members": left})
        else:
            kept.append(binding)
    if removed:
        policy["bindings"] = kept
    return removed


def _add_member(policy: JSON, role: str, member: str) -> bool:
    """Add `member` to the unconditional binding of `role` in `policy`; False when it is already there."""
    bindings: list[JSON] = policy.setdefault("bindings", [])
    for binding in bindings:
        if binding.get("role") == role and "condition" not in binding:
            members: list[str] = binding.setdefault("members", [])
            if member in members:
                return False
            members.append(member)
            return True
    bindings.append({"role": role, "members": [member]})
    return True


class _IAMSigner(google.auth.crypt.Signer):
    """Signs with IAM Credentials `signBlob` as `email` (for credentials without a private key).

    Our own small client instead of google-cloud-storage's `access_token`/`service_account_email` path: that
    one has a fixed endpoint and unbounded retries; this one has a configurable endpoint and a timeout.
    """

    def __init__(self, credentials: Any, email: str, endpoint: str, timeout: float) -> None:
        self._credentials, self._email, self._endpoint, self._timeout = credentials, email, endpoint, timeout

    @property
    def key_id(self) -> None:
        return None

    def sign(self, message: bytes | str) -> bytes:
        payload = message.encode() if isinstance(message, str) else message
        url = f"{self._endpoint}/v1/projects/-/serviceAccounts/{quote(self._email, safe='@.')}:signBlob"
        with AuthorizedSession(self._credentials) as session:  # type: ignore[no-untyped-call]
            response = session.post(
                url, json={"payload": base64.b64encode(payload).decode("ascii")}, timeout=self._timeout
            )
        if response.status_code != 200:
            raise StorageError(
                f"IAM signBlob as {self._email}: HTTP {response.status_code}: {_scrub(response.text[:300])}"
            )
        return base64.b64decode(response.json()["signedBlob"])


class _IAMSigningCredentials(google.auth.credentials.Signing):
    """The `Signing` face google-cloud-storage's V4 signer needs, backed by `_IAMSigner`."""

    def __init__(self, credentials: Any, email: str, endpoint: str, timeout: float) -> None:
        self._signer = _IAMSigner(credentials, email, endpoint, timeout)
        self._email = email

    def sign_bytes(self, message: bytes) -> bytes:
        return self._signer.sign(message)

    @property
    def signer_email(self) -> str:
        return self._email

    @property
    def signer(self) -> _IAMSigner:
        return self._signer


# ----------------------------------------------------------------------------------------------- factory
async def read_metadata(
    host: str, keys: Sequence[str], *, timeout: float = METADATA_TIMEOUT
) -> tuple[dict[str, str], str | None]:
    """(values found, None) from the GCE metadata server at `host`, or ({}, why it is not reachable).

    `keys` are METADATA_PATHS keys. A 404 means "not set" (the server is reachable). A response without
    `Metadata-Flavor: Google` is not the metadata server. Never takes much longer than `timeout`.
    """
    if not keys:
        return {}, None
    root = f"{_endpoint(host)}/computeMetadata/v1"
    client_timeout = aiohttp.ClientTimeout(total=timeout, connect=timeout)

    async def get(session: aiohttp.ClientSession, key: str) -> str | None:
        async with session.get(f"{root}/{METADATA_PATHS[key]}", allow_redirects=False) as response:
            if response.headers.get("Metadata-Flavor") != "Google":
                raise ValueError(f"HTTP {response.status} without the header Metadata-Flavor: Google")
            if response.status == 404:
                return None
            if response.status != 200:
                raise ValueError(f"HTTP {response.status} for {METADATA_PATHS[key]}")
            return (await response.text()).strip() or None

    async def get_all() -> list[str | None]:
        async with aiohttp.ClientSession(timeout=client_timeout, headers={"Metadata-Flavor": "Google"}) as session:
            # Every request finishes before the session closes; the first failure (in key order) is raised.
            results = await asyncio.gather(*(get(session, k) for k in keys), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if not isinstance(r, BaseException)]

    try:
        values = await asyncio.wait_for(get_all(), timeout + 0.5)
    except TimeoutError:
        return {}, f"no answer within {timeout:g} s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return {}, f"{type(exc).__name__}: {exc}"
    return {k: v for k, v in zip(keys, values, strict=True) if v}, None


async def create_driver(
    settings: DriverSettings, *, metadata_host: str | None = None, credentials: Any = None
) -> GCPDriver:
    """The gcp driver for `settings`, completed from the GCE metadata server (see module docstring).

    `metadata_host` overrides GCE_METADATA_HOST; `credentials` (google.auth credentials) override
    Application Default Credentials. Raises CloudConfigError naming every missing or invalid setting.
    """
    env = settings.env
    values = {
        "project_id": env.get(ENV_PROJECT_ID, "").strip(),
        "cluster_name": settings.cluster_name.strip(),
        "cluster_location": env.get(ENV_CLUSTER_LOCATION, "").strip(),
    }
    registry_url = settings.registry_url.strip()
    wanted = [k for k in ("project_id", "cluster_name") if not values[k]]
    if not values["cluster_location"] and not registry_url:
        wanted.append("cluster_location")
    host = metadata_host or env.get(ENV_METADATA_HOST, "").strip() or DEFAULT_METADATA_HOST
    found, unreachable = await read_metadata(host, wanted)
    values.update(found)
    if wanted:
        log.info("gcp settings from the GCE metadata server", host=host, found=sorted(found), unreachable=unreachable)
    why = (
        "not found in the GCE metadata either"
        if unreachable is None
        else f"and the GCE metadata server {host} is not reachable: {unreachable}"
    )

    errors: list[str] = []
    if not values["cluster_name"]:
        errors.append(f"--cluster-name/CLUSTER_NAME is required for the gcp cloud ({why})")
    project = values["project_id"]
    if not project:
        errors.append(f"{ENV_PROJECT_ID} is required for the gcp cloud ({why})")
    elif not registry_url:
        if not values["cluster_location"]:
            errors.append(
                f"--registry-url/REGISTRY_URL or {ENV_CLUSTER_LOCATION} (to derive the default registry) is "
                f"required for the gcp cloud ({why})"
            )
        else:
            try:
                registry_url = f"{_region(values['cluster_location'])}-docker.pkg.dev/{project}/substratus"
            except CloudConfigError as exc:
                errors.append(str(exc))
    bucket: BucketURL | None = None
    bucket_url = settings.artifact_bucket_url.strip() or (f"gs://{project}-substratus-artifacts" if project else "")
    if bucket_url:
        try:
            bucket = BucketURL.parse(bucket_url)
        except CloudConfigError as exc:
            errors.append(f"--artifact-bucket-url/ARTIFACT_BUCKET_URL: {exc}")
    principal = settings.principal.strip() or (f"substratus@{project}.iam.gserviceaccount.com" if project else "")
    workload = settings.workload_principal.strip()
    if errors:
        raise CloudConfigError("; ".join(errors))
    assert bucket is not None  # project is known, so there is a default
    return GCPDriver(
        cluster_name=values["cluster_name"],
        artifact_bucket=bucket,
        registry_url=registry_url,
        principal=principal,
        project_id=project,
        workload_principal=workload,
        cluster_location=values["cluster_location"],
        storage_endpoint=env.get(ENV_STORAGE_EMULATOR_HOST, "").strip() or None,
        iam_endpoint=env.get(ENV_IAM_ENDPOINT, "").strip() or IAM_ENDPOINT,
        iam_credentials_endpoint=env.get(ENV_IAM_CREDENTIALS_ENDPOINT, "").strip() or IAM_CREDENTIALS_ENDPOINT,
        credentials=credentials,
    )


__all__ = ["GCPDriver", "create_driver", "read_metadata"]
