"""The `substratus-controller` command.

- `run`: the controller (flags with environment fallbacks; see `run --help`).
- `crds`: print the CustomResourceDefinitions.
- `namespace-iam NAMESPACE`: print the cloud IAM the namespace's workload principal needs (docs/iam.md).

Exit codes: 0 success (including a graceful stop), 1 a runtime failure (e.g. lost leadership, a dead
watcher), 2 a usage or configuration error (one line naming the setting).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from substratus_controller.api.v1.crd import build_crds, strip_cel
from substratus_controller.yamlio import dump_all

if TYPE_CHECKING:
    from substratus_controller.cloud.local import LocalDriver
    from substratus_controller.runtime.client import Client


def _crds(args: argparse.Namespace) -> int:
    crds = build_crds()
    if args.no_cel:
        crds = [strip_cel(c) for c in crds]
    sys.stdout.write(dump_all(crds))
    return 0


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run the controller",
        description="Run the controller. Flags fall back to the environment variables shown.",
    )
    a = run.add_argument
    a("--kubeconfig", help="kubeconfig file (default: in-cluster credentials, else $KUBECONFIG, else ~/.kube/config)")
    _add_cloud_flags(run)
    a("--local-gpu-types", help="comma-separated GPU types the local cluster has (local cloud only) [LOCAL_GPU_TYPES]")
    a("--metrics-bind-address", help="address of /metrics, or 0 to disable [METRICS_BIND_ADDRESS; default :8080]")
    a(
        "--metrics-secure",
        action="store_true",
        default=None,
        help="serve /metrics over HTTPS to callers "
        "allowed `get` on the non-resource URL /metrics (TokenReview + SubjectAccessReview) [METRICS_SECURE]",
    )
    a("--metrics-cert-dir", help="with --metrics-secure: directory with tls.crt and tls.key (default: a "
      "self-signed certificate made at start) [METRICS_CERT_DIR]")  # fmt: skip
    a(
        "--health-probe-bind-address",
        help="address of /healthz and /readyz, or 0 to disable [HEALTH_PROBE_BIND_ADDRESS; default :8081]",
    )
    a("--leader-elect", action="store_true", default=None, help="elect a leader with a Lease [LEADER_ELECT]")
    a(
        "--leader-election-namespace",
        help="namespace of the Lease (default: the pod's namespace, else substratus) [LEADER_ELECTION_NAMESPACE]",
    )
    a("--namespace", action="append", help="watch only this namespace (repeatable; default: all) [WATCH_NAMESPACES]")
    a(
        "--upload-bind-address",
        help="local cloud: address of the upload endpoint, or 0 to disable [UPLOAD_BIND_ADDRESS; default :8082]",
    )
    a("--upload-public-url", help="local cloud: the base URL clients use to reach the upload endpoint "
      "[UPLOAD_PUBLIC_URL; default http://127.0.0.1:<port>]; URLs are signed with UPLOAD_SIGNING_KEY "
      "(default: a random key per process)")  # fmt: skip
    a("--upload-max-bytes", help="local cloud: largest upload body accepted [UPLOAD_MAX_BYTES; default 20 GiB]")
    a(
        "--upload-max-concurrent",
        help="local cloud: uploads received at once; more get HTTP 503 [UPLOAD_MAX_CONCURRENT; default 8]",
    )
    a("--builder", help="image builder of build Jobs: kaniko or buildah [BUILDER; default buildah for --cloud "
      "local, kaniko for gcp and aws]")  # fmt: skip
    a("--builder-image", help="the builder's image [BUILDER_IMAGE; default gcr.io/kaniko-project/executor:v1.23.2 "
      "for kaniko, quay.io/buildah/stable:v1.38.0 for buildah]")  # fmt: skip
    a(
        "--git-image",
        help="image of the git-clone init container, entrypoint git [GIT_IMAGE; default alpine/git:2.45.2]",
    )
    a("--registry-insecure", nargs="?", const="true", metavar="BOOL",
      help="the image registry speaks plain HTTP: true or false (alone: true) [REGISTRY_INSECURE; default true "
      "for --cloud local, false for gcp and aws]")  # fmt: skip
    a("--notebook-network-policy", help="none, or deny-ingress: a NetworkPolicy per notebook Pod admitting no "
      "ingress from any pod (port-forward still works; needs manifests/optional/notebook-network-policy's RBAC) "
      "[NOTEBOOK_NETWORK_POLICY; default none]")  # fmt: skip
    a("--workers", help="concurrent reconciles per kind [WORKERS; default 4]")
    a(
        "--sync-period",
        help="seconds between resyncs of every object (controller-runtime's SyncPeriod) [SYNC_PERIOD; default 36000]",
    )
    a("--log-format", choices=("json", "console"), help="log format [LOG_FORMAT; default json]")
    a("--log-level", help="debug, info, warning or error [LOG_LEVEL; default info]")
    run.set_defaults(func=_run)


def _add_cloud_flags(parser: argparse.ArgumentParser) -> None:
    """The cloud driver's settings, shared by `run` and `namespace-iam`."""
    a = parser.add_argument
    a("--cloud", help="cloud driver: local, gcp or aws [CLOUD; default local]")
    a("--cluster-name", help="cluster name used in image names and artifact paths [CLUSTER_NAME]")
    a(
        "--artifact-bucket-url",
        help="artifact bucket, e.g. gs://b, s3://b, file:///var/lib/substratus/artifacts [ARTIFACT_BUCKET_URL]",
    )
    a("--registry-url", help="image registry prefix for built images; may hold {namespace} [REGISTRY_URL]")
    a("--principal", help="the controller's own cloud identity (URL signing, identity binding) [PRINCIPAL]")
    a("--workload-principal", help="cloud identity of a namespace's workloads, a template with {namespace} "
      "[WORKLOAD_PRINCIPAL; default substratus-{namespace}@<project>.iam.gserviceaccount.com on gcp, "
      "arn:aws:iam::<account>:role/substratus-{namespace} on aws]")  # fmt: skip


def _add_namespace_iam(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    iam = sub.add_parser(
        "namespace-iam",
        help="print the cloud IAM a namespace's workload principal needs (docs/iam.md)",
        description="Print, as JSON, the principal the workloads of NAMESPACE act as and the IAM to give it "
        "(gcp: the bucket and registry bindings; aws: the role's permission policy). Takes the same cloud "
        "settings as `run`; needs no cloud call when they are all given.",
    )
    iam.add_argument("namespace", metavar="NAMESPACE")
    _add_cloud_flags(iam)
    iam.set_defaults(func=_namespace_iam)


def _namespace_iam(args: argparse.Namespace) -> int:
    import json

    from substratus_controller.cloud.base import IdentityError
    from substratus_controller.runtime.logs import configure
    from substratus_controller.settings import ConfigError, create_driver, resolve

    configure(fmt="console", level="warning")  # stdout is the JSON alone

    async def render() -> dict[str, object]:
        driver = await create_driver(resolve(vars(args)))
        return driver.namespace_iam(args.namespace)

    try:
        out = asyncio.run(render())
    except (ConfigError, IdentityError, ValueError) as exc:
        print(f"substratus-controller: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


def _run(args: argparse.Namespace) -> int:
    from substratus_controller.settings import ConfigError, resolve

    try:
        settings = resolve(vars(args))
    except ConfigError as exc:
        print(f"substratus-controller: configuration error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(settings))


async def _serve(settings: object) -> int:
    import structlog

    from substratus_controller.cloud.local import LocalDriver
    from substratus_controller.cloud.local_upload_server import UploadServer
    from substratus_controller.constants import API_VERSION
    from substratus_controller.controllers.wiring import build_manager
    from substratus_controller.runtime.client import Client
    from substratus_controller.runtime.errors import ApiError, NotFound
    from substratus_controller.runtime.health import parse_address
    from substratus_controller.runtime.logs import configure
    from substratus_controller.runtime.manager import ManagerError, ManagerOptions, in_cluster_namespace
    from substratus_controller.settings import (
        ConfigError,
        Settings,
        create_driver,
        describe_build,
        render_context,
    )

    assert isinstance(settings, Settings)
    configure(fmt=settings.log_format, level=settings.log_level)
    try:
        driver = await create_driver(settings)
    except ConfigError as exc:
        print(f"substratus-controller: configuration error: {exc}", file=sys.stderr)
        return 2
    structlog.get_logger("substratus.cli").info("cloud_configured", **driver.describe(), **describe_build(settings))
    try:
        client = await Client.connect(settings.kubeconfig)
    except Exception as exc:  # kubeconfig missing or unreadable: one clear line
        print(f"substratus-controller: cannot load Kubernetes credentials: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            await client.request("GET", f"/apis/{API_VERSION}", timeout=10)
        except NotFound:
            print(
                f"substratus-controller: the {API_VERSION} CRDs are not installed; install them with "
                "`substratus-controller crds | kubectl apply -f -`",
                file=sys.stderr,
            )
            return 2
        except ApiError:
            pass  # the API server may be coming up; the informers retry with backoff
        if isinstance(driver, LocalDriver):
            await resolve_local_registry(driver, client)
        options = ManagerOptions(
            metrics_address=settings.metrics_bind_address,
            metrics_secure=settings.metrics_secure,
            metrics_cert_dir=settings.metrics_cert_dir,
            probe_address=settings.health_probe_bind_address,
            namespaces=settings.namespaces or None,
            leader_election=settings.leader_elect,
            leader_election_namespace=settings.leader_election_namespace or in_cluster_namespace(),
        )
        manager, _ = build_manager(client, options, ctx=render_context(settings, driver), workers=settings.workers,
                                   sync_period=settings.sync_period)  # fmt: skip
        upload = parse_address(settings.upload_bind_address)
        if isinstance(driver, LocalDriver) and driver.signer is not None and upload is not None:
            server = UploadServer(driver.signer, host=upload[0], port=upload[1], max_bytes=settings.upload_max_bytes,
                                  max_concurrent=settings.upload_max_concurrent)  # fmt: skip
            manager.add_runnable("upload-server", server.serve, needs_leader=False)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, manager.stop)
        try:
            await manager.run()
        except ManagerError as exc:
            print(f"substratus-controller: {exc}", file=sys.stderr)
            return 1
        return 0
    finally:
        await client.close()


async def resolve_local_registry(driver: LocalDriver, client: Client) -> None:
    """The local cloud's registry: REGISTRY_URL, else what the cluster publishes (KEP-1755); logged."""
    import structlog

    from substratus_controller.cloud.registry_hosting import discover, is_loopback

    log = structlog.get_logger("substratus.cli")
    if driver.registry_url:
        if is_loopback(driver.registry_url):
            hint = "inside a builder pod this is the pod itself; use an address pods and nodes reach"
            log.warning("registry_is_loopback", registry=driver.registry_url, hint=hint)
        return
    hosting = await discover(client)
    driver.registry_url, driver.registry_problem = hosting.registry, hosting.problem
    if hosting.registry:
        log.info("registry_discovered", registry=hosting.registry, source="kube-public/local-registry-hosting")
    else:
        log.warning("no_registry", problem=hosting.problem,
                    hint="builds report RegistryNotConfigured; set --registry-url/REGISTRY_URL")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="substratus-controller", description="Kubernetes operator for substratus.ai/v1 resources."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_namespace_iam(sub)
    crds = sub.add_parser(
        "crds",
        help="print the CustomResourceDefinitions as YAML (substratus-controller crds | kubectl apply -f -)",
        description="Print the four CustomResourceDefinitions as a multi-document YAML stream.",
    )
    crds.add_argument(
        "--no-cel",
        action="store_true",
        help="omit x-kubernetes-validations (CEL) for API servers older than 1.25, whose kubectl "
        "validation rejects the field; the controller enforces the same rules anyway",
    )
    crds.set_defaults(func=_crds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
