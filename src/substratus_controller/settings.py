"""Controller settings: command-line flags with environment fallbacks, validated once at start-up.

Precedence: flag > environment variable > default. Every problem raises `ConfigError` whose message names
the flag and the environment variable, so the process can exit with one clear line.

Builder settings (render/builders.py): `--builder` (kaniko or buildah; default buildah on the local cloud,
kaniko on gcp and aws, as upstream), `--builder-image` (default: that builder's pinned image),
`--git-image` and `--registry-insecure` (the registry speaks plain HTTP; default true on the local cloud
only). `render_context` turns them and the driver into the renderers' `RenderContext`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from substratus_controller.cloud.base import BucketURL, CloudConfigError, CloudDriver, DriverSettings
from substratus_controller.cloud.local import DEFAULT_CLUSTER_NAME, LocalDriver
from substratus_controller.cloud.local_upload_server import DEFAULT_MAX_BYTES, DEFAULT_MAX_CONCURRENT, UploadSigner
from substratus_controller.constants import (
    BUILDER_BUILDAH,
    BUILDER_KANIKO,
    BUILDERS,
    NETWORK_POLICIES,
    NETWORK_POLICY_NONE,
)
from substratus_controller.render.context import DEFAULT_BUILDER_IMAGES, DEFAULT_GIT_IMAGE, RenderContext
from substratus_controller.runtime.health import parse_address

CLOUDS = ("local", "gcp", "aws")
DEFAULT_BUILDER = {"local": BUILDER_BUILDAH, "gcp": BUILDER_KANIKO, "aws": BUILDER_KANIKO}
INSECURE_REGISTRY_BY_DEFAULT = ("local",)  # local registries are plain HTTP (e.g. the real node's 10.244.0.1:5000)
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


class ConfigError(ValueError):
    """A setting is missing or invalid (the message names it)."""


@dataclass
class Settings:
    kubeconfig: str | None = None
    cloud: str = "local"
    cluster_name: str = ""
    artifact_bucket_url: str = ""
    registry_url: str = ""
    principal: str = ""
    workload_principal: str = ""
    local_gpu_types: list[str] | None = None
    metrics_bind_address: str = ":8080"
    metrics_secure: bool = False
    metrics_cert_dir: str = ""
    health_probe_bind_address: str = ":8081"
    leader_elect: bool = False
    leader_election_namespace: str = ""
    namespaces: list[str] = field(default_factory=list)
    workers: int = 4
    log_format: str = "json"
    log_level: str = "info"
    sync_period: float | None = 36000.0
    upload_bind_address: str = ":8082"
    upload_public_url: str = ""
    upload_signing_key: bytes = b""
    upload_max_bytes: int = DEFAULT_MAX_BYTES
    upload_max_concurrent: int = DEFAULT_MAX_CONCURRENT
    builder: str = BUILDER_KANIKO
    builder_image: str = DEFAULT_BUILDER_IMAGES[BUILDER_KANIKO]
    git_image: str = DEFAULT_GIT_IMAGE
    registry_insecure: bool = False
    notebook_network_policy: str = NETWORK_POLICY_NONE
    env: dict[str, str] = field(default_factory=dict)


def resolve(flags: Mapping[str, object], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from parsed flags (None = not given) and the environment."""
    env = os.environ if env is None else env

    def pick(flag: str, var: str | None, default: str = "") -> str:
        value = flags.get(flag)
        if value is not None:
            return str(value)
        return env.get(var, default) if var else default

    s = Settings()
    s.kubeconfig = pick("kubeconfig", None) or None
    s.cloud = pick("cloud", "CLOUD", "local").strip().lower()
    if s.cloud not in CLOUDS:
        raise ConfigError(f"--cloud/CLOUD: unknown cloud {s.cloud!r}; expected one of {', '.join(CLOUDS)}")
    s.cluster_name = pick("cluster_name", "CLUSTER_NAME")
    s.artifact_bucket_url = pick("artifact_bucket_url", "ARTIFACT_BUCKET_URL")
    s.registry_url = pick("registry_url", "REGISTRY_URL")
    s.principal = pick("principal", "PRINCIPAL")
    s.workload_principal = pick("workload_principal", "WORKLOAD_PRINCIPAL")
    gpu_types = pick("local_gpu_types", "LOCAL_GPU_TYPES")
    s.local_gpu_types = [t.strip() for t in gpu_types.split(",") if t.strip()] if gpu_types else None
    s.metrics_bind_address = pick("metrics_bind_address", "METRICS_BIND_ADDRESS", ":8080")
    s.metrics_secure = bool(flags.get("metrics_secure")) or env.get("METRICS_SECURE", "").lower() in TRUE_WORDS
    s.metrics_cert_dir = pick("metrics_cert_dir", "METRICS_CERT_DIR")
    if s.metrics_cert_dir and not s.metrics_secure:
        raise ConfigError("--metrics-cert-dir/METRICS_CERT_DIR: only used with --metrics-secure/METRICS_SECURE")
    s.health_probe_bind_address = pick("health_probe_bind_address", "HEALTH_PROBE_BIND_ADDRESS", ":8081")
    for flag, value in (
        ("--metrics-bind-address", s.metrics_bind_address),
        ("--health-probe-bind-address", s.health_probe_bind_address),
    ):
        try:
            parse_address(value)
        except ValueError as exc:
            raise ConfigError(f"{flag}: {exc}") from None
    s.leader_elect = bool(flags.get("leader_elect")) or env.get("LEADER_ELECT", "").lower() in TRUE_WORDS
    s.leader_election_namespace = pick("leader_election_namespace", "LEADER_ELECTION_NAMESPACE")
    namespaces = flags.get("namespace")
    if isinstance(namespaces, Sequence) and not isinstance(namespaces, str) and namespaces:
        s.namespaces = [str(n) for n in namespaces]
    elif env.get("WATCH_NAMESPACES"):
        s.namespaces = [n.strip() for n in env["WATCH_NAMESPACES"].split(",") if n.strip()]
    s.workers = _integer(pick("workers", "WORKERS", "4"), "--workers/WORKERS", 1, 256)
    s.sync_period = float(
        _integer(pick("sync_period", "SYNC_PERIOD", "36000"), "--sync-period/SYNC_PERIOD", 10, 7 * 24 * 3600)
    )
    s.log_format = pick("log_format", "LOG_FORMAT", "json")
    if s.log_format not in ("json", "console"):
        raise ConfigError(f"--log-format/LOG_FORMAT: expected json or console, got {s.log_format!r}")
    s.log_level = pick("log_level", "LOG_LEVEL", "info").lower()
    if s.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"--log-level/LOG_LEVEL: expected debug, info, warning or error, got {s.log_level!r}")
    _resolve_upload(s, pick, env)
    _resolve_builder(s, pick)
    s.notebook_network_policy = pick("notebook_network_policy", "NOTEBOOK_NETWORK_POLICY").strip().lower()
    s.notebook_network_policy = s.notebook_network_policy or NETWORK_POLICY_NONE
    if s.notebook_network_policy not in NETWORK_POLICIES:
        raise ConfigError(
            f"--notebook-network-policy/NOTEBOOK_NETWORK_POLICY: expected {' or '.join(NETWORK_POLICIES)}"
            f", got {s.notebook_network_policy!r}"
        )
    s.env = dict(env)
    return s


def _integer(value: str, setting: str, low: int, high: int) -> int:
    if not value.strip().isascii() or not value.strip().isdigit() or not low <= int(value) <= high:
        raise ConfigError(f"{setting}: expected an integer from {low} to {high}, got {value!r}")
    return int(value)


Pick = Callable[..., str]  # (flag, environment variable, default) -> the flag's value, else the variable's


def _resolve_upload(s: Settings, pick: Pick, env: Mapping[str, str]) -> None:
    """The local upload server's address, public URL, signing key and limits."""
    s.upload_max_bytes = _integer(pick("upload_max_bytes", "UPLOAD_MAX_BYTES", str(DEFAULT_MAX_BYTES)),
                                  "--upload-max-bytes/UPLOAD_MAX_BYTES", 1, 1 << 50)  # fmt: skip
    s.upload_max_concurrent = _integer(pick("upload_max_concurrent", "UPLOAD_MAX_CONCURRENT",
                                            str(DEFAULT_MAX_CONCURRENT)),
                                       "--upload-max-concurrent/UPLOAD_MAX_CONCURRENT", 1, 1024)  # fmt: skip
    s.upload_bind_address = pick("upload_bind_address", "UPLOAD_BIND_ADDRESS", ":8082")
    try:
        upload = parse_address(s.upload_bind_address)
    except ValueError as exc:
        raise ConfigError(f"--upload-bind-address/UPLOAD_BIND_ADDRESS: {exc}") from None
    s.upload_public_url = pick("upload_public_url", "UPLOAD_PUBLIC_URL")
    if not s.upload_public_url and upload is not None:
        s.upload_public_url = f"http://{upload[0] or '127.0.0.1'}:{upload[1]}"
    if s.upload_public_url and not s.upload_public_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"--upload-public-url/UPLOAD_PUBLIC_URL: expected an http(s) URL, got {s.upload_public_url!r}"
        )
    key = env.get("UPLOAD_SIGNING_KEY", "")
    if key and len(key.encode()) < 16:
        raise ConfigError("UPLOAD_SIGNING_KEY: must be at least 16 characters")
    s.upload_signing_key = key.encode() if key else secrets.token_bytes(32)


def _resolve_builder(s: Settings, pick: Pick) -> None:
    """The image builder, its images, and whether the registry is plain HTTP."""
    s.builder = pick("builder", "BUILDER").strip().lower() or DEFAULT_BUILDER[s.cloud]
    if s.builder not in BUILDERS:
        raise ConfigError(f"--builder/BUILDER: unknown builder {s.builder!r}; expected {' or '.join(BUILDERS)}")
    s.builder_image = pick("builder_image", "BUILDER_IMAGE").strip() or DEFAULT_BUILDER_IMAGES[s.builder]
    s.git_image = pick("git_image", "GIT_IMAGE").strip() or DEFAULT_GIT_IMAGE
    insecure = pick("registry_insecure", "REGISTRY_INSECURE").strip().lower()
    if not insecure:
        s.registry_insecure = s.cloud in INSECURE_REGISTRY_BY_DEFAULT
    elif insecure in TRUE_WORDS + FALSE_WORDS:
        s.registry_insecure = insecure in TRUE_WORDS
    else:
        raise ConfigError(f"--registry-insecure/REGISTRY_INSECURE: expected true or false, got {insecure!r}")


def render_context(s: Settings, driver: CloudDriver) -> RenderContext:
    """What the renderers get: the driver and the resolved builder settings."""
    return RenderContext(cloud=driver, builder=s.builder, builder_image=s.builder_image, git_image=s.git_image,
                         insecure_registry=s.registry_insecure,
                         notebook_network_policy=s.notebook_network_policy)  # fmt: skip


def describe_build(s: Settings) -> dict[str, str]:
    """The resolved builder settings, for the start-up log line."""
    return {
        "builder": s.builder,
        "builder_image": s.builder_image,
        "git_image": s.git_image,
        "registry_insecure": str(s.registry_insecure).lower(),
    }


def make_local_driver(s: Settings) -> LocalDriver:
    """The local driver (no I/O); raises ConfigError naming the bad setting."""
    try:
        bucket = BucketURL.parse(s.artifact_bucket_url) if s.artifact_bucket_url else None
    except CloudConfigError as exc:
        raise ConfigError(f"--artifact-bucket-url/ARTIFACT_BUCKET_URL: {exc}") from None
    try:
        driver = LocalDriver(
            cluster_name=s.cluster_name or DEFAULT_CLUSTER_NAME,
            artifact_bucket=bucket,
            registry_url=s.registry_url,  # "": discovered at start-up (cloud/registry_hosting.py)
            gpu_types=s.local_gpu_types,
        )
    except CloudConfigError as exc:
        raise ConfigError(str(exc)) from None
    if s.upload_public_url:
        driver.signer = UploadSigner(
            key=s.upload_signing_key, base_dir=Path(driver.artifact_bucket.path), public_url=s.upload_public_url
        )
    return driver


async def create_driver(s: Settings) -> CloudDriver:
    """The cloud driver for the settings (gcp and aws may auto-configure over the network, briefly);
    raises ConfigError naming the bad setting."""
    if s.cloud == "local":
        return make_local_driver(s)
    common = DriverSettings(
        cluster_name=s.cluster_name,
        artifact_bucket_url=s.artifact_bucket_url,
        registry_url=s.registry_url,
        principal=s.principal,
        workload_principal=s.workload_principal,
        env=s.env,
    )
    try:
        if s.cloud == "gcp":
            from substratus_controller.cloud import gcp  # the SDKs are imported only for their cloud

            return await gcp.create_driver(common)
        from substratus_controller.cloud import aws

        return await aws.create_driver(common)
    except CloudConfigError as exc:
        raise ConfigError(str(exc)) from None
