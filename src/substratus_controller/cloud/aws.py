"""The `aws` driver: EKS clusters with S3 artifacts, ECR images, IRSA identities and Karpenter GPU nodes.

Settings (docs/decisions.md §4, docs/upstream-behaviour.md §5.1 WIP branch): `--cluster-name/CLUSTER_NAME` (required),
`--artifact-bucket-url/ARTIFACT_BUCKET_URL` (`s3://bucket[/path]`), `--registry-url/REGISTRY_URL`,
`--principal/PRINCIPAL` (the controller's own IAM role ARN), `--workload-principal/WORKLOAD_PRINCIPAL` (a role
ARN template with `{namespace}`: the role a namespace's workloads assume); from the environment `AWS_REGION`
(or `AWS_DEFAULT_REGION`, required), `AWS_ACCOUNT_ID`, `AWS_OIDC_PROVIDER` and `AWS_ENDPOINT_URL`. Defaults: registry
`<acct>.dkr.ecr.<region>.amazonaws.com/substratus`, bucket `s3://<acct>-substratus-artifacts`, principal
`arn:aws:iam::<acct>:role/substratus`, workload principal `arn:aws:iam::<acct>:role/substratus-{namespace}`
(role names are at most 64 characters, so namespaces up to 53); the account comes from STS GetCallerIdentity
only when a default needs it, the OIDC issuer from EKS DescribeCluster(CLUSTER_NAME). Credentials come from
boto3's default chain of the process (IRSA on EKS), never from settings.

Invariants:
- Mounts use the Mountpoint for Amazon S3 CSI driver (`s3.csi.aws.com`), which only supports static
  provisioning: per namespace one PersistentVolume `substratus-artifacts-<ns>` on the namespace's prefix of
  the artifact bucket (Mountpoint's `prefix` option: a namespace's volume never shows another's objects)
  pre-bound to the PersistentVolumeClaim `substratus-artifacts` (`mount_objects`).
  Both are shared by every workload of the namespace, so they carry no ownerReference (like the workload
  ServiceAccounts). A pod mounts an object's prefix with subPath `<hash>/<subdir>`, relative to the PV's
  prefix; only URLs inside a namespace prefix of the artifact bucket can be mounted. No pod annotations.
- FUSE files appear owned by uid 1000 / gid 3003, the workload pods' user and group (render/security.py).
- Uploads: S3 presigned SigV4 `PUT` URLs that sign `Content-Type: application/octet-stream` and
  `Content-MD5`, so a body with another md5 is rejected by S3 (BadDigest) and the header cannot be swapped
  (SignatureDoesNotMatch); lifetime <= 300 s. Kaniko reads the tarball straight from `s3://` with the
  builder ServiceAccount's IRSA role; for buildah an init container `fetch-context` (AWS_CLI_IMAGE, the same
  role) runs `aws s3 cp <s3 url> /upload/<file>` into an emptyDir the builder mounts read-only.
- `object_md5` returns the HeadObject ETag (quotes stripped) only when it is an md5: single-part uploads
  without SSE-KMS/SSE-C. Otherwise the `x-amz-meta-md5` metadata if present, else None (logged).
- Identity (IRSA): ServiceAccounts get `eks.amazonaws.com/role-arn: <the namespace's role>`; `bind_identity`
  makes that role's trust policy allow `sts:AssumeRoleWithWebIdentity` from the cluster's OIDC provider for
  `system:serviceaccount:<ns>:<ksa>`. It only ever edits its own statement (Sid `SubstratusIRSA<hash of the
  provider>`, one per cluster), adding subjects to its list; other statements are never touched (upstream
  overwrote the `sub` condition, so only one ServiceAccount could be bound at a time, docs/upstream-behaviour.md §13.9).
  One statement with a subject list, not one statement per ServiceAccount, because trust policies are limited to 2048
  characters by default (about 5 statements, but 30+ subjects). No write when the subject is already
  allowed by any statement. Calls are serialised in-process, and subjects bound by this process are kept
  in every write, so IAM's eventual consistency cannot make one bind undo another. `unbind_identity` removes
  subjects from the own statement only (and the statement once it is empty). `namespace_permissions`
  renders the role's permission policy (docs/iam.md): the namespace's prefix and its ECR repositories.
- GPUs are placed by Karpenter's well-known node labels (`karpenter.k8s.aws/instance-gpu-name`, plus
  `instance-gpu-memory` in MiB per GPU to tell the A100 40GB from the 80GB); pods tolerate the
  `nvidia.com/gpu` NoSchedule taint that Karpenter GPU node pools set (upstream never did, docs/upstream-behaviour.md
  §13.9); no spot toleration. A GPU request without a type cannot be placed.
- Every AWS call runs in a thread with botocore connect/read timeouts and an overall timeout; failures
  raise StorageError whose message never holds a presigned URL, signature or credential (query strings of
  URLs are redacted). Presigned URLs are never logged. boto3 is imported only by this module, which is
  imported only when `--cloud aws` is selected.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from substratus_controller.api.v1.types import GPUType
from substratus_controller.constants import (
    LABEL_MANAGED_BY,
    MANAGED_BY_VALUE,
    WORKLOAD_GID,
    WORKLOAD_SERVICE_ACCOUNTS,
    WORKLOAD_UID,
)
from substratus_controller.jsontypes import JSON

from .base import (
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

log = structlog.get_logger("substratus.cloud.aws")

T = TypeVar("T")

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
CSI_DRIVER = "s3.csi.aws.com"
MOUNT_CLAIM = "substratus-artifacts"
MOUNT_CAPACITY = "1200Gi"  # required by the API, ignored by the Mountpoint CSI driver
GPU_NAME_LABEL = "karpenter.k8s.aws/instance-gpu-name"
GPU_MEMORY_LABEL = "karpenter.k8s.aws/instance-gpu-memory"
MAX_URL_LIFETIME = 300  # seconds (S4)
AWS_CLI_IMAGE = "amazon/aws-cli:2.17.0"  # entrypoint `aws`; fetches uploads for buildah builds
CALL_TIMEOUT = 20.0  # seconds for one driver call, retries included (below the reconcilers' 30 s)
BOTO_CONFIG: JSON = {
    "connect_timeout": 5,
    "read_timeout": 10,
    "retries": {"max_attempts": 2, "mode": "standard"},
}
WEB_IDENTITY_ACTION = "sts:AssumeRoleWithWebIdentity"
STS_AUDIENCE = "sts.amazonaws.com"
POLICY_VERSION = "2012-10-17"

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/(?:[!-~]*/)?([\w+=,.@-]{1,64})$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_OIDC_PROVIDER = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~-]+)*$")
_URL_QUERY = re.compile(r"(https?://[^\s?'\"]*)\?[^\s'\"]*")
_SECRET_PARAM = re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)|Signature|Credential)=[^&\s'\"]+")


def _gpu(name: str, memory_mib: int | None = None) -> GPUPlacement:
    selector = {GPU_NAME_LABEL: name}
    if memory_mib is not None:
        selector[GPU_MEMORY_LABEL] = str(memory_mib)
    return GPUPlacement(node_selector=selector)  # default tolerations: nvidia.com/gpu Exists NoSchedule


# Karpenter labels nodes with the lower-cased EC2 GpuInfo name and the per-GPU memory in MiB.
AWS_GPU_TABLE: dict[str | None, GPUPlacement] = {
    GPUType.NVIDIA_T4.value: _gpu("t4"),  # g4dn
    GPUType.NVIDIA_A10G.value: _gpu("a10g"),  # g5
    GPUType.NVIDIA_L4.value: _gpu("l4"),  # g6
    GPUType.NVIDIA_V100.value: _gpu("v100"),  # p3, p3dn (16 or 32 GiB: any)
    GPUType.NVIDIA_A100.value: _gpu("a100", 40960),  # p4d: A100 40GB
    GPUType.NVIDIA_A100_80GB.value: _gpu("a100", 81920),  # p4de: A100 80GB
    GPUType.NVIDIA_H100.value: _gpu("h100"),  # p5
}


def redact(text: str) -> str:
    """`text` without URL query strings or SigV4 signature/credential parameters (for error messages)."""
    return _SECRET_PARAM.sub(r"\1=<redacted>", _URL_QUERY.sub(r"\1?<redacted>", text))


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        message = error.get("Message") or ""
        operation = getattr(exc, "operation_name", "") or "request"
        return redact(f"{operation} failed: {code} {message}".strip())
    return redact(f"{type(exc).__name__}: {exc}")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def content_md5(md5_hex: str) -> str:
    """The `Content-MD5` header value (base64 of the raw digest) of a hex md5; ValueError if not 32 hex."""
    value = md5_hex.strip().lower()
    if not _MD5_HEX.match(value):
        raise ValueError(f"md5 must be 32 hexadecimal digits, got {md5_hex!r}")
    return base64.b64encode(bytes.fromhex(value)).decode()


def md5_from_head(head: Mapping[str, Any]) -> tuple[str | None, str]:
    """(md5 hex or None, where it came from) of a HeadObject response.

    The ETag is the body's md5 only for single-part uploads stored without SSE-KMS or SSE-C; a multipart
    ETag reads `<md5 of part md5s>-<parts>`. Otherwise the `md5` user metadata (`x-amz-meta-md5`) is used.
    """
    etag = str(head.get("ETag") or "").strip().strip('"').lower()
    encrypted = str(head.get("ServerSideEncryption") or "").startswith("aws:kms") or bool(
        head.get("SSECustomerAlgorithm")
    )
    if _MD5_HEX.match(etag) and not encrypted:
        return etag, "etag"
    metadata = head.get("Metadata") or {}
    meta_md5 = str(metadata.get("md5") or "").strip().lower()
    if _MD5_HEX.match(meta_md5):
        return meta_md5, "metadata"
    reason = "encrypted with a customer or KMS key" if encrypted else "multipart or unknown ETag"
    return None, reason


# ----------------------------------------------------------------------------------- IRSA trust policy
def statement_id(provider_arn: str) -> str:
    """The Sid of the statement this driver owns in a role's trust policy (one per OIDC provider)."""
    return "SubstratusIRSA" + hashlib.sha256(provider_arn.encode()).hexdigest()[:8]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _iam_like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def _condition_values(condition: Mapping[str, Any], operator: str, key: str) -> list[str] | None:
    """Values of `key` under `operator` (condition keys are case-insensitive); None when absent."""
    block = condition.get(operator)
    if not isinstance(block, Mapping):
        return None
    for name, value in block.items():
        if str(name).lower() == key.lower():
            return [str(v) for v in _as_list(value)]
    return None


def statement_allows(statement: Mapping[str, Any], *, provider_arn: str, issuer: str, subject: str) -> bool:
    """Whether an Allow statement lets `subject` (a `system:serviceaccount:` name) assume the role through
    the OIDC provider. A statement with no `<issuer>:sub` condition allows every subject."""
    if statement.get("Effect") != "Allow":
        return False
    actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
    if not any(_iam_like(a, WEB_IDENTITY_ACTION.lower()) for a in actions):
        return False
    principal = statement.get("Principal")
    if not isinstance(principal, Mapping) or provider_arn not in _as_list(principal.get("Federated")):
        return False
    condition = statement.get("Condition") or {}
    if not isinstance(condition, Mapping):
        return False
    key = f"{issuer}:sub"
    equals = _condition_values(condition, "StringEquals", key)
    like = _condition_values(condition, "StringLike", key)
    constrained = any(
        str(k).lower() == key.lower() for block in condition.values() if isinstance(block, Mapping) for k in block
    )
    if not constrained:
        return True
    return subject in (equals or []) or any(_iam_like(p, subject) for p in like or [])


def trust_allows(document: Mapping[str, Any], *, provider_arn: str, issuer: str, subject: str) -> bool:
    """Whether any statement of the trust policy allows `subject` (see `statement_allows`)."""
    return any(
        isinstance(s, Mapping) and statement_allows(s, provider_arn=provider_arn, issuer=issuer, subject=subject)
        for s in _as_list(document.get("Statement"))
    )


def with_trusted_subjects(
    document: Mapping[str, Any], *, provider_arn: str, issuer: str, subjects: Sequence[str]
) -> JSON:
    """A copy of the trust policy whose own statement (`statement_id`) also trusts `subjects`.

    Other statements are kept as they are, in order; the own statement is appended when missing, and its
    subject list keeps what it had (sorted, without duplicates).
    """
    sid = statement_id(provider_arn)
    statements = [dict(s) if isinstance(s, Mapping) else s for s in _as_list(document.get("Statement"))]
    sub_key, aud_key = f"{issuer}:sub", f"{issuer}:aud"
    own = next((s for s in statements if isinstance(s, dict) and s.get("Sid") == sid), None)
    if own is None:
        own = {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": WEB_IDENTITY_ACTION,
            "Condition": {"StringEquals": {aud_key: STS_AUDIENCE, sub_key: []}},
        }
        statements.append(own)
    condition = dict(own.get("Condition") or {})
    equals = dict(condition.get("StringEquals") or {})
    had = _condition_values(condition, "StringEquals", sub_key) or []
    for name in [n for n in equals if str(n).lower() == sub_key.lower()]:
        del equals[name]
    equals[sub_key] = sorted({*had, *subjects})
    condition["StringEquals"] = equals
    own["Condition"] = condition
    return {**dict(document), "Version": document.get("Version", POLICY_VERSION), "Statement": statements}


def without_trusted_subjects(
    document: Mapping[str, Any], *, provider_arn: str, issuer: str, subjects: set[str]
) -> JSON:
    """A copy of the trust policy whose own statement (`statement_id`) no longer trusts `subjects`; the own
    statement is dropped once it trusts nobody. Other statements are kept as they are, in order."""
    sid = statement_id(provider_arn)
    sub_key = f"{issuer}:sub"
    statements: list[Any] = []
    for statement in _as_list(document.get("Statement")):
        if not (isinstance(statement, Mapping) and statement.get("Sid") == sid):
            statements.append(statement)
            continue
        condition = dict(statement.get("Condition") or {})
        equals = dict(condition.get("StringEquals") or {})
        had = _condition_values(condition, "StringEquals", sub_key) or []
        left = [s for s in had if s not in subjects]
        if len(left) == len(had):
            statements.append(statement)
            continue
        if not left:
            continue
        for name in [n for n in equals if str(n).lower() == sub_key.lower()]:
            del equals[name]
        equals[sub_key] = left
        statements.append({**dict(statement), "Condition": {**condition, "StringEquals": equals}})
    return {**dict(document), "Statement": statements}


def _policy_document(raw: Any) -> JSON:
    """IAM returns trust policies URL-encoded; boto3 usually decodes them already."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw.strip():
        return cast(JSON, json.loads(urllib.parse.unquote(raw)))
    return {"Version": POLICY_VERSION, "Statement": []}


# ----------------------------------------------------------------------------------- settings
@dataclass(frozen=True, slots=True)
class RoleARN:
    partition: str
    account: str
    name: str

    @classmethod
    def parse(cls, arn: str) -> RoleARN:
        match = _ROLE_ARN.match(arn)
        if match is None:
            raise CloudConfigError(
                f"--principal/PRINCIPAL: expected an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {arn!r}"
            )
        return cls(*match.groups())


def _partition(region: str) -> tuple[str, str]:
    """(ARN partition, DNS suffix) of a region."""
    if region.startswith("cn-"):
        return "aws-cn", "amazonaws.com.cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov", "amazonaws.com"
    return "aws", "amazonaws.com"


def _artifact_bucket(url: str) -> BucketURL:
    try:
        bucket = BucketURL.parse(url)
    except CloudConfigError as exc:
        raise CloudConfigError(f"--artifact-bucket-url/ARTIFACT_BUCKET_URL: {exc}") from None
    if bucket.scheme != "s3" or not _BUCKET_NAME.match(bucket.bucket):
        raise CloudConfigError(
            f"--artifact-bucket-url/ARTIFACT_BUCKET_URL must be an S3 bucket URL (s3://bucket[/path]) for the aws "
            f"cloud, got {url!r}"
        )
    return bucket


def _oidc_provider(issuer: str) -> str:
    """The provider name IAM uses: the issuer URL without `https://` and trailing `/`."""
    value = issuer.strip()
    value = value.removeprefix("https://").rstrip("/")
    if not _OIDC_PROVIDER.match(value):
        raise CloudConfigError(
            f"AWS_OIDC_PROVIDER: expected the cluster's OIDC issuer host and path "
            f"(e.g. oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE), got {issuer!r}"
        )
    return value


class _Clients:
    """boto3 clients of one session, created on first use (thread-safe; low-level clients are)."""

    def __init__(self, *, region: str, endpoint_url: str | None) -> None:
        self.region, self.endpoint_url = region, endpoint_url
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                if self._session is None:
                    self._session = boto3.session.Session(region_name=self.region)
                options: JSON = dict(BOTO_CONFIG)
                if service == "s3":
                    # Path-style addressing for custom endpoints (moto, MinIO-style gateways); AWS itself gets
                    # virtual-hosted URLs on the regional endpoint.
                    options["signature_version"] = "s3v4"
                    options["s3"] = {"addressing_style": "path" if self.endpoint_url else "virtual"}
                    if "request_checksum_calculation" in Config.OPTION_DEFAULTS:  # botocore >= 1.36
                        # Only the checksums an operation requires: a presigned PUT signs Content-MD5 and
                        # nothing else the uploading client would have to send.
                        options["request_checksum_calculation"] = "when_required"
                client = self._session.client(service, endpoint_url=self.endpoint_url, config=Config(**options))
                self._clients[service] = client
            return client


async def _run(what: str, fn: Callable[[], T]) -> T:
    """`fn()` in a thread with the overall timeout; AWS errors become StorageError with a redacted message."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn), CALL_TIMEOUT)
    except TimeoutError:
        raise StorageError(f"{what}: no answer from AWS within {CALL_TIMEOUT:g}s") from None
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"{what}: {_describe_error(exc)}") from None


async def _autoconfigure(setting: str, api: str, fn: Callable[[], T], hint: str) -> T:
    try:
        return await _run(api, fn)
    except StorageError as exc:
        raise CloudConfigError(f"{setting} is not set and looking it up failed ({exc}); {hint}") from None
    except (KeyError, TypeError) as exc:
        raise CloudConfigError(f"{setting} is not set and {api} did not return it ({exc!r}); {hint}") from None


async def create_driver(settings: DriverSettings) -> AWSDriver:
    """The aws driver for `settings`, with defaults and auto-configuration (see module docstring).

    Raises CloudConfigError naming the flag and/or environment variable of any missing or invalid setting.
    """
    env = settings.env
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    if not region:
        raise CloudConfigError("AWS_REGION (or AWS_DEFAULT_REGION): required for the aws cloud, e.g. us-west-2")
    if not _REGION.match(region):
        raise CloudConfigError(f"AWS_REGION: {region!r} is not an AWS region name (e.g. us-west-2)")
    cluster = settings.cluster_name.strip()
    if not cluster:
        raise CloudConfigError("--cluster-name/CLUSTER_NAME: required for the aws cloud (the EKS cluster name)")
    endpoint_url = (env.get("AWS_ENDPOINT_URL") or "").strip() or None
    clients = _Clients(region=region, endpoint_url=endpoint_url)
    partition, dns_suffix = _partition(region)

    account = (env.get("AWS_ACCOUNT_ID") or "").strip()
    if account and not _ACCOUNT.match(account):
        raise CloudConfigError(f"AWS_ACCOUNT_ID: expected 12 digits, got {account!r}")
    if not account and not (settings.registry_url and settings.artifact_bucket_url and settings.principal):
        account = str(
            await _autoconfigure(
                "AWS_ACCOUNT_ID",
                "sts:GetCallerIdentity",
                lambda: clients.get("sts").get_caller_identity()["Account"],
                "set AWS_ACCOUNT_ID, or all of --registry-url/REGISTRY_URL, --artifact-bucket-url/"
                "ARTIFACT_BUCKET_URL and --principal/PRINCIPAL",
            )
        )
    bucket = _artifact_bucket(settings.artifact_bucket_url or f"s3://{account}-substratus-artifacts")
    registry = settings.registry_url.strip() or f"{account}.dkr.ecr.{region}.{dns_suffix}/substratus"
    principal = settings.principal.strip() or f"arn:{partition}:iam::{account}:role/substratus"
    RoleARN.parse(principal)
    workload = settings.workload_principal.strip()

    issuer = (env.get("AWS_OIDC_PROVIDER") or "").strip()
    if not issuer:
        issuer = str(
            await _autoconfigure(
                "AWS_OIDC_PROVIDER",
                "eks:DescribeCluster",
                lambda: clients.get("eks").describe_cluster(name=cluster)["cluster"]["identity"]["oidc"]["issuer"],
                f"set AWS_OIDC_PROVIDER to the OIDC issuer of EKS cluster {cluster!r} (without https://), or "
                "allow eks:DescribeCluster",
            )
        )
    driver = AWSDriver(
        cluster_name=cluster,
        artifact_bucket=bucket,
        registry_url=registry,
        principal=principal,
        region=region,
        oidc_provider=issuer,
        endpoint_url=endpoint_url,
        clients=clients,
        workload_principal=workload,
    )
    log.info("aws_driver_configured", **driver.describe())
    return driver


# ----------------------------------------------------------------------------------- driver
class AWSDriver(CloudDriver):
    name = "aws"
    GPU_TABLE = AWS_GPU_TABLE
    principal_annotation = ROLE_ARN_ANNOTATION
    USES_PERSISTENT_VOLUMES = True

    def __init__(self, *, cluster_name: str, artifact_bucket: BucketURL, registry_url: str, principal: str,
                 region: str, oidc_provider: str, endpoint_url: str | None = None,
                 clients: _Clients | None = None, workload_principal: str = "") -> None:  # fmt: skip
        if artifact_bucket.scheme != "s3":
            raise CloudConfigError(
                f"--artifact-bucket-url/ARTIFACT_BUCKET_URL must be an s3:// URL for the aws cloud, "
                f"got {artifact_bucket}"
            )
        if not registry_url.strip():
            raise CloudConfigError("--registry-url/REGISTRY_URL: required for the aws cloud")
        self.role = RoleARN.parse(principal)
        template = (
            workload_principal or f"arn:{self.role.partition}:iam::{self.role.account}:role/substratus-{{namespace}}"
        )
        super().__init__(
            cluster_name=cluster_name,
            artifact_bucket=artifact_bucket,
            registry_url=registry_url,
            principal=principal,
            workload_principal_template=template,
        )
        self.region = region
        self.oidc_provider = _oidc_provider(oidc_provider)
        self.provider_arn = f"arn:{self.role.partition}:iam::{self.role.account}:oidc-provider/{self.oidc_provider}"
        self._clients = clients or _Clients(region=region, endpoint_url=endpoint_url)
        self._bind_lock = asyncio.Lock()
        self._bound: dict[str, set[str]] = {}  # role name -> subjects this process bound

    def client(self, service: str) -> Any:
        """The boto3 client for `service` (s3, iam, sts, eks) this driver uses."""
        return self._clients.get(service)

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "region": self.region, "oidc_provider": self.oidc_provider}

    # ------------------------------------------------------------------------------------------- pure
    def principal_problem(self, principal: str) -> str:
        if not _ROLE_ARN.match(principal):
            return "is not an IAM role ARN (arn:aws:iam::<account>:role/<name>, names of at most 64 characters)"
        if principal == self.principal:
            return "is the controller's own principal"
        return ""

    def namespace_permissions(self, namespace: str) -> JSON:
        """The permission policy of the namespace's role, no more (docs/iam.md): read, write and list its own
        prefix of the artifact bucket, and push and pull its own ECR repositories."""
        prefix = self.namespace_prefix(namespace)
        partition = self.role.partition
        registry = self.namespace_registry(namespace)
        host, _, path = registry.partition("/")
        repo_prefix = f"{path}/" if path else ""
        repositories = [
            f"arn:{partition}:ecr:{self.region}:{self.role.account}:repository/"
            f"{repo_prefix}{self.cluster_name}-{kind}-{namespace}.*"
            for kind in ("dataset", "model", "notebook", "server")
        ]
        statements: list[JSON] = [
            {
                "Sid": "Objects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": f"arn:{partition}:s3:::{prefix.bucket}/{prefix.path}/*",
            },
            {
                "Sid": "List",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{prefix.bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix.path}/*", f"{prefix.path}/"]}},
            },
        ]
        if ".dkr.ecr." in host:
            statements += [
                {"Sid": "RegistryLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {
                    "Sid": "Images",
                    "Effect": "Allow",
                    "Action": [
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:InitiateLayerUpload",
                        "ecr:UploadLayerPart",
                        "ecr:CompleteLayerUpload",
                        "ecr:PutImage",
                    ],
                    "Resource": repositories,
                },
            ]
        return {"Version": POLICY_VERSION, "Statement": statements}

    def namespace_iam(self, namespace: str) -> JSON:
        """The role's permission policy, and the trust policy `bind_identity` keeps (creating the role with it
        means the controller finds every subject already trusted and never edits it)."""
        subjects = sorted(f"system:serviceaccount:{namespace}:{sa}" for sa in WORKLOAD_SERVICE_ACCOUNTS)
        trust = with_trusted_subjects({}, provider_arn=self.provider_arn, issuer=self.oidc_provider, subjects=subjects)
        return {
            **super().namespace_iam(namespace),
            "permissionPolicy": self.namespace_permissions(namespace),
            "trustPolicy": trust,
        }

    def mount_volume_name(self, namespace: str) -> str:
        """The cluster-scoped PersistentVolume serving the artifact bucket to `namespace`."""
        return f"{MOUNT_CLAIM}-{namespace}"

    def mount_objects(self, namespace: str) -> list[JSON]:
        """The PersistentVolume on the artifact bucket and its claim in `namespace` (static provisioning)."""
        if not namespace:
            raise ValueError("mount_objects needs a namespace")
        volume_name = self.mount_volume_name(namespace)
        labels = {LABEL_MANAGED_BY: MANAGED_BY_VALUE}
        options = [
            "allow-delete",
            "allow-overwrite",
            "allow-other",  # lets the kubelet (root) resolve subPaths inside the FUSE mount
            f"uid={WORKLOAD_UID}",
            f"gid={WORKLOAD_GID}",
            f"region {self.region}",
        ]
        options.append(f"prefix {self.namespace_prefix(namespace).path}/")
        volume: JSON = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume_name, "labels": labels},
            "spec": {
                "capacity": {"storage": MOUNT_CAPACITY},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                # storageClassName "" is required, and kept despite the renderers' "no empty strings" rule: it
                # is how static binding is spelled (unset would let the DefaultStorageClass admission plugin
                # assign the default class to the claim and provision some other volume). The API server
                # stores "" as given (the field is a *string), so applying it again is still a no-op.
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": MOUNT_CLAIM},
                "mountOptions": options,
                "csi": {
                    "driver": CSI_DRIVER,
                    "volumeHandle": volume_name,
                    "volumeAttributes": {"bucketName": self.artifact_bucket.bucket},
                },
            },
        }
        claim: JSON = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": MOUNT_CLAIM, "namespace": namespace, "labels": labels},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",  # static binding: see the PersistentVolume above
                "resources": {"requests": {"storage": MOUNT_CAPACITY}},
                "volumeName": volume_name,
            },
        }
        return [volume, claim]

    def relative_path(self, url: BucketURL) -> str:
        """`url`'s path relative to its namespace's prefix (the root of that namespace's PersistentVolume).

        ValueError for URLs outside every namespace prefix: no PersistentVolume reaches them.
        """
        found = self.split_namespace(url)
        if found is None:
            raise ValueError(
                f"{url} is outside the artifact bucket's namespace prefixes "
                f"({self.artifact_bucket}/clusters/{self.cluster_name}/namespaces/<ns>): "
                "the aws cloud mounts only those"
            )
        return found[1]

    def mount_bucket(self, url: BucketURL, *, volume_name: str, mounts: Sequence[Mount]) -> BucketVolume:
        """Mounts of `url` from the namespace's one claim on the bucket. Every call returns the same volume
        (named after the claim, whatever `volume_name` asks), so a pod holds the claim once: several pod
        volumes on one claim hang older kubelets (kubernetes/kubernetes#127004)."""
        del volume_name
        relative = self.relative_path(url)
        volume_name = MOUNT_CLAIM
        volume = {"name": volume_name, "persistentVolumeClaim": {"claimName": MOUNT_CLAIM}}
        container_mounts = []
        for m in mounts:
            mount: JSON = {"name": volume_name, "mountPath": m.mount_path}
            sub_path = "/".join(p for p in (relative, m.subdir.strip("/")) if p)
            if sub_path:
                mount["subPath"] = sub_path
            if m.read_only:
                mount["readOnly"] = True
            container_mounts.append(mount)
        return BucketVolume(volumes=[volume], mounts=container_mounts)

    def build_context(self, upload: BucketURL) -> tuple[str, BucketVolume]:
        return str(upload), BucketVolume(volumes=[], mounts=[])

    def upload_tarball(self, upload: BucketURL) -> UploadTarball:
        """`aws s3 cp` of the upload into the builder pod (IRSA credentials, the driver's region)."""
        self._object(upload)
        copy = ["aws", "s3", "cp", "--only-show-errors", "--region", self.region]
        return fetched_upload(upload, image=AWS_CLI_IMAGE, copy_command=copy)

    def default_resources(self) -> DefaultResources:
        return DefaultResources(cpu=2, memory=4, disk=100)

    def builder_resources(self) -> JSON:
        return {"requests": {"cpu": "2", "memory": "12Gi", "ephemeral-storage": "100Gi"}}

    # ------------------------------------------------------------------------------------------- effects
    @staticmethod
    def _object(url: BucketURL) -> tuple[str, str]:
        if url.scheme != "s3" or not url.bucket or not url.path:
            raise ValueError(f"{url} is not an S3 object URL (s3://bucket/key)")
        return url.bucket, url.path

    async def signed_upload_url(self, url: BucketURL, *, md5_hex: str, expires_in: int = MAX_URL_LIFETIME) -> str:
        bucket, key = self._object(url)
        if expires_in <= 0:
            raise ValueError(f"expires_in must be positive, got {expires_in}")
        lifetime = min(expires_in, MAX_URL_LIFETIME)
        params = {
            "Bucket": bucket,
            "Key": key,
            "ContentType": "application/octet-stream",
            "ContentMD5": content_md5(md5_hex),
        }

        def sign() -> str:
            s3 = self.client("s3")
            return str(s3.generate_presigned_url("put_object", Params=params, ExpiresIn=lifetime, HttpMethod="PUT"))

        signed = await _run("signing the upload URL", sign)
        log.info("aws_upload_url_signed", bucket=bucket, key=key, expires_in=lifetime)  # never the URL
        return signed

    async def object_md5(self, url: BucketURL) -> str | None:
        bucket, key = self._object(url)

        def head() -> Mapping[str, Any] | None:
            try:
                return cast(Mapping[str, Any], self.client("s3").head_object(Bucket=bucket, Key=key))
            except ClientError as exc:
                if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

        response = await _run("reading the object's md5", head)
        if response is None:
            return None
        md5, source = md5_from_head(response)
        if md5 is None:
            log.warning("aws_object_md5_unknown", bucket=bucket, key=key, reason=source)
        return md5

    def repository(self, image: str) -> str | None:
        """The ECR repository of `image` (`<host>/<repo path>:<tag>` -> `<repo path>`), or None when the image
        is not in this account's ECR (e.g. a registry the user runs themselves)."""
        host, _, rest = image.partition("/")
        if not host.endswith(".amazonaws.com") or ".dkr.ecr." not in host or not rest:
            return None
        return rest.rsplit(":", 1)[0].split("@", 1)[0]

    async def prepare_image(self, image: str) -> None:
        """ECR does not create repositories on push: create the image's repository when missing (idempotent)."""
        repository = self.repository(image)
        if repository is None:
            return

        def create() -> None:
            try:
                self.client("ecr").create_repository(repositoryName=repository)
            except ClientError as exc:
                if _error_code(exc) != "RepositoryAlreadyExistsException":
                    raise

        await _run(f"creating the ECR repository {repository}", create)

    async def prepare_artifacts(self, url: BucketURL, subdirs: Sequence[str]) -> None:
        """Create `<prefix>/<subdir>/` directory markers, so the subPaths exist before a pod mounts them
        (Mountpoint lists a `dir/` object as a directory; the kubelet then need not mkdir through FUSE)."""
        bucket, prefix = self._object(url)
        keys = [f"{prefix}/{sub.strip('/')}/" for sub in subdirs if sub.strip("/")]

        def put() -> None:
            s3 = self.client("s3")
            for key in keys:
                s3.put_object(Bucket=bucket, Key=key, Body=b"")

        await _run("creating the artifact directories", put)

    async def bind_identity(self, *, service_account: str, namespace: str) -> None:
        """Let `system:serviceaccount:<namespace>:<service_account>` assume the PRINCIPAL role (IRSA trust)."""
        if not service_account or not namespace:
            raise ValueError("bind_identity needs a service account and a namespace")
        subject = f"system:serviceaccount:{namespace}:{service_account}"
        role = RoleARN.parse(self.workload_principal(namespace)).name

        def bind() -> bool:
            iam = self.client("iam")
            document = _policy_document(iam.get_role(RoleName=role)["Role"].get("AssumeRolePolicyDocument"))
            if trust_allows(document, provider_arn=self.provider_arn, issuer=self.oidc_provider, subject=subject):
                return False
            updated = with_trusted_subjects(
                document,
                provider_arn=self.provider_arn,
                issuer=self.oidc_provider,
                subjects=sorted(self._bound.get(role, set()) | {subject}),
            )
            iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(updated, separators=(",", ":")))
            return True

        async with self._bind_lock:
            try:
                changed = await _run(f"binding {subject} to IAM role {role}", bind)
            except StorageError as exc:
                if "LimitExceeded" in str(exc):
                    raise StorageError(
                        f"{exc} (the role's trust policy is full: raise the IAM 'Role trust policy length' quota)"
                    ) from None
                raise
            self._bound.setdefault(role, set()).add(subject)
        if changed:
            log.info("aws_identity_bound", role=role, subject=subject)
        else:
            log.debug("aws_identity_already_bound", role=role, subject=subject)

    async def unbind_identity(self, *, service_accounts: Sequence[str], namespace: str) -> None:
        """Remove these ServiceAccounts' subjects from the own statement of the namespace role's trust policy."""
        subjects = {f"system:serviceaccount:{namespace}:{sa}" for sa in service_accounts}
        role = RoleARN.parse(self.workload_principal(namespace)).name

        def unbind() -> bool:
            iam = self.client("iam")
            try:
                raw = iam.get_role(RoleName=role)["Role"].get("AssumeRolePolicyDocument")
            except ClientError as exc:
                if _error_code(exc) == "NoSuchEntity":
                    return False
                raise
            document = _policy_document(raw)
            updated = without_trusted_subjects(
                document, provider_arn=self.provider_arn, issuer=self.oidc_provider, subjects=subjects
            )
            if updated == document:
                return False
            iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(updated, separators=(",", ":")))
            return True

        async with self._bind_lock:
            changed = await _run(f"unbinding namespace {namespace} from IAM role {role}", unbind)
            self._bound[role] = self._bound.get(role, set()) - subjects
        log.info("aws_identity_unbound", role=role, subjects=sorted(subjects), changed=changed)
