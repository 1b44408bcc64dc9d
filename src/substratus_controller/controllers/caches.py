"""The informer caches the reconcilers read, and the pod index that finds an object's pods.

Children caches hold only objects labelled as ours (`app.kubernetes.io/managed-by=substratus`); Jobs and
Pods are projections (metadata + status). Pods are indexed by the object they run for (INDEX_PARENT), from
their `substratus.ai/<kind>` label: Job and ReplicaSet pods are not owned by the object itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from substratus_controller.constants import LABEL_ROLE, ROLE_RUN, Kind, kind_label
from substratus_controller.jsontypes import JSON
from substratus_controller.resources import DATASETS, MODELS, NOTEBOOKS, SERVERS
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.cache import CachedResource
from substratus_controller.runtime.resource import Resource

INDEX_PARENT = "substratus.ai/parent"  # pods by the object they run for: "<namespace>/<kind>/<name>"


def spec_ref(obj: JSON, field: str) -> str | None:
    """The name in `spec.<field>.name` (a Model or Dataset the object names), if there is one."""
    ref = (obj.get("spec") or {}).get(field)
    name = ref.get("name") if isinstance(ref, dict) else None
    return name if isinstance(name, str) and name else None


def parent_name(pod: JSON, kind: Kind) -> str | None:
    """The `kind` object a pod runs for, from its `substratus.ai/<kind>` label."""
    return (pod["metadata"].get("labels") or {}).get(kind_label(kind))


def parent_keys(pod: JSON) -> list[str]:
    """The INDEX_PARENT keys of a pod (`<namespace>/<kind>/<name>`)."""
    ns = pod["metadata"].get("namespace")
    return [f"{ns}/{kind.singular}/{name}" for kind in Kind if (name := parent_name(pod, kind))]


@dataclass
class Caches:
    """The informer caches the reconcilers read."""

    datasets: CachedResource
    models: CachedResource
    notebooks: CachedResource
    servers: CachedResource
    jobs: CachedResource
    pods: CachedResource
    deployments: CachedResource
    services: CachedResource
    configmaps: CachedResource
    serviceaccounts: CachedResource
    pvcs: CachedResource
    pvs: CachedResource | None = None  # only for drivers that mount through PersistentVolumes
    networkpolicies: CachedResource | None = None  # only with --notebook-network-policy

    def pods_of(self, kind: Kind, namespace: str, name: str, *, run: bool = True) -> list[JSON]:
        """The cached pods labelled for `kind`/`name` (those with `role: run` unless `run` is False)."""
        pods = self.pods.by_index(INDEX_PARENT, f"{namespace}/{kind.singular}/{name}")
        return [p for p in pods if not run or (p["metadata"].get("labels") or {}).get(LABEL_ROLE) == ROLE_RUN]

    def forget(self, resource: Resource, child: JSON) -> None:
        """Drop a deleted child from its cache; a Secret (never cached) has nothing to drop."""
        if resource != k8s.SECRETS:
            self.of(resource).forget(child)

    def of(self, resource: Resource) -> CachedResource:
        """The cache of `resource` (KeyError for a kind that is never cached: Secrets)."""
        if resource == k8s.PERSISTENTVOLUMES:
            if self.pvs is None:
                raise KeyError("PersistentVolumes are not cached for this cloud driver")
            return self.pvs
        if resource == k8s.NETWORKPOLICIES:
            if self.networkpolicies is None:
                raise KeyError("NetworkPolicies are not cached without --notebook-network-policy")
            return self.networkpolicies
        return {
            DATASETS: self.datasets,
            MODELS: self.models,
            NOTEBOOKS: self.notebooks,
            SERVERS: self.servers,
            k8s.JOBS: self.jobs,
            k8s.PODS: self.pods,
            k8s.DEPLOYMENTS: self.deployments,
            k8s.SERVICES: self.services,
            k8s.CONFIGMAPS: self.configmaps,
            k8s.SERVICEACCOUNTS: self.serviceaccounts,
            k8s.PERSISTENTVOLUMECLAIMS: self.pvcs,
        }[resource]
