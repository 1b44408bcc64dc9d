"""Which cluster and namespace a plugin talks to, resolved the way kubectl resolves them.

- kubeconfig: `--kubeconfig PATH` (must exist), else every file in `$KUBECONFIG` (merged, first one wins for
  each context and for `current-context`), else `~/.kube/config`; with none of them and inside a pod, the
  in-cluster service account (and its namespace file).
- namespace: `-n` > the object's own namespace (manifest) > the kubeconfig context's namespace > `default`.
  A manifest namespace that differs from an explicit `-n` is an error with kubectl's wording.
- The plugins shell out to kubectl for port-forward and exec; `kubectl_flags` gives those processes the same
  kubeconfig and context (the namespace is passed per command).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from substratus_controller.runtime.client import Client

from .commandline import PluginError

DEFAULT_NAMESPACE = "default"
IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Cluster:
    """Where to connect: kubeconfig files (empty: in-cluster), an optional context, the context's namespace."""

    paths: tuple[Path, ...] = ()
    context: str | None = None
    context_namespace: str | None = None
    explicit_kubeconfig: str | None = None

    def kubectl_flags(self) -> list[str]:
        """Flags that make a kubectl child process talk to the same cluster (KUBECONFIG is inherited)."""
        flags: list[str] = []
        if self.explicit_kubeconfig:
            flags += ["--kubeconfig", self.explicit_kubeconfig]
        if self.context:
            flags += ["--context", self.context]
        return flags

    async def connect(self) -> Client:
        try:
            if not self.paths:
                return await Client.connect(None, context=self.context)
            return await Client.connect(os.pathsep.join(str(p) for p in self.paths), context=self.context)
        except Exception as exc:  # kubernetes-asyncio raises ConfigException, OSError, KeyError...
            where = ", ".join(str(p) for p in self.paths) or "in-cluster configuration"
            raise PluginError(f"cannot load the kubeconfig ({where}): {exc}") from None


def kubeconfig_paths(flag: str | None, env: Mapping[str, str]) -> list[Path]:
    """The kubeconfig files kubectl would read (see module docstring); [] means in-cluster."""
    if flag:
        path = Path(flag).expanduser()
        if not path.is_file():
            raise PluginError(f"stat {flag}: no such file or directory")
        return [path]
    listed = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return listed
    default = Path.home() / ".kube" / "config"
    if not default.exists() and env.get("KUBERNETES_SERVICE_HOST"):
        return []
    return [default]


def context_namespace(paths: list[Path], context: str | None) -> str | None:
    """The namespace of `context` (default: the current context) across the merged files, if any."""
    if not paths:
        try:
            return IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or None
        except OSError:
            return None
    current: str | None = None
    contexts: dict[str, Any] = {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as exc:
            raise PluginError(f"cannot read the kubeconfig {path}: {exc}") from None
        if not isinstance(doc, dict):
            continue
        current = current or doc.get("current-context") or None
        for item in doc.get("contexts") or ():
            if isinstance(item, dict) and item.get("name") and item["name"] not in contexts:
                contexts[item["name"]] = item.get("context") or {}
    chosen = context or current
    if context and context not in contexts:
        raise PluginError(f'context "{context}" does not exist')
    ns = (contexts.get(chosen or "") or {}).get("namespace")
    return str(ns) if ns else None


def cluster_from_flags(kubeconfig: str | None, context: str | None, env: Mapping[str, str] | None = None) -> Cluster:
    env = os.environ if env is None else env
    paths = kubeconfig_paths(kubeconfig, env)
    return Cluster(tuple(paths), context, context_namespace(paths, context), kubeconfig)


def resolve_namespace(flag: str | None, manifest: str | None, context: str | None) -> str:
    """-n > the manifest's namespace > the context's > "default"; -n and a different manifest namespace clash."""
    if flag:
        if manifest and manifest != flag:
            raise PluginError(
                f'the namespace from the provided object "{manifest}" does not match the namespace "{flag}". '
                f"You must pass '--namespace={manifest}' to perform this operation."
            )
        return flag
    return manifest or context or DEFAULT_NAMESPACE
