"""Where the local cloud pushes and pulls built images when REGISTRY_URL is not set: KEP-1755.

KEP-1755 ("Standard for communicating a local registry") has a cluster that hosts a registry publish
`kube-public/local-registry-hosting` with `data["localRegistryHosting.v1"]`, a YAML document with
`host` (from the user's machine), `hostFromContainerRuntime` (default: `host`) and `hostFromClusterNetwork`
(default: `hostFromContainerRuntime`). kind's local-registry recipe, k3d and the real test node publish it.

Invariants:
- A build pushes from a pod (cluster network) and the node's runtime pulls the same image name, so the
  local cloud needs ONE name both reach: `hostFromClusterNetwork` must equal `hostFromContainerRuntime`
  (after defaulting); otherwise there is no usable registry and the reason says why.
- A loopback host (`localhost`, `127.0.0.0/8`, `::1`) is refused for pods: inside a pod it is the pod.
- `resolve_hosting` is pure; `discover` reads the ConfigMap with `list` (the role's existing ConfigMap
  verb), never fails the caller: it returns `Hosting(registry="", problem=...)` instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from substratus_controller.constants import LOCAL_REGISTRY_HOSTING_KEY, LOCAL_REGISTRY_HOSTING_NAME
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import ApiError

HOSTING_NAMESPACE = "kube-public"


@dataclass(frozen=True)
class Hosting:
    """The registry to use ("" when none) and, when none, why."""

    registry: str
    problem: str = ""


def is_loopback(registry: str) -> bool:
    """Whether `host[:port]` names the local machine (which, in a pod, is the pod)."""
    host = registry.split("/", 1)[0]
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_hosting(data: Mapping[str, str] | None) -> Hosting:
    """The registry a `local-registry-hosting` ConfigMap's data describes (see module docstring)."""
    where = f"{HOSTING_NAMESPACE}/{LOCAL_REGISTRY_HOSTING_NAME}"
    if not data or LOCAL_REGISTRY_HOSTING_KEY not in data:
        return Hosting("", f"ConfigMap {where} has no {LOCAL_REGISTRY_HOSTING_KEY}")
    try:
        doc: Any = yaml.safe_load(data[LOCAL_REGISTRY_HOSTING_KEY])
    except yaml.YAMLError as exc:
        return Hosting("", f"ConfigMap {where}: {LOCAL_REGISTRY_HOSTING_KEY} is not YAML: {exc}")
    if not isinstance(doc, dict):
        return Hosting("", f"ConfigMap {where}: {LOCAL_REGISTRY_HOSTING_KEY} is not a mapping")
    host = str(doc.get("host") or "")
    runtime = str(doc.get("hostFromContainerRuntime") or host)
    cluster = str(doc.get("hostFromClusterNetwork") or runtime)
    if not cluster:
        return Hosting("", f"ConfigMap {where} names no host")
    if cluster != runtime:
        return Hosting("", f"ConfigMap {where}: hostFromClusterNetwork {cluster!r} differs from "
                           f"hostFromContainerRuntime {runtime!r}; builder pods push and nodes pull one image "
                           "name, so set REGISTRY_URL to a name both reach")  # fmt: skip
    if is_loopback(cluster):
        return Hosting("", f"ConfigMap {where}: registry {cluster!r} is a loopback address, which inside a "
                           "builder pod is the pod itself; publish hostFromClusterNetwork (reachable from pods "
                           "and nodes) or set REGISTRY_URL")  # fmt: skip
    return Hosting(cluster)


async def discover(client: Client) -> Hosting:
    """Read the ConfigMap through `client` and resolve it."""
    try:
        found = await client.list(
            k8s.CONFIGMAPS, namespace=HOSTING_NAMESPACE, field_selector=f"metadata.name={LOCAL_REGISTRY_HOSTING_NAME}"
        )
    except ApiError as exc:
        return Hosting("", f"cannot read {HOSTING_NAMESPACE}/{LOCAL_REGISTRY_HOSTING_NAME}: {exc}")
    items = found.get("items") or []
    if not items:
        return Hosting("", f"no ConfigMap {HOSTING_NAMESPACE}/{LOCAL_REGISTRY_HOSTING_NAME} (KEP-1755)")
    return resolve_hosting(items[0].get("data"))
