"""Wire the four reconcilers onto a Manager: caches, indexes, watches.

Caches: the four kinds in full; children only when labelled `app.kubernetes.io/managed-by=substratus`, and
Jobs/Pods as projections (metadata + status: their specs are immutable and large). Secrets are never
cached or read (the notebook token is only created).

Watches (controller-runtime style):
- each kind reconciles itself on spec/annotation/label changes (its own status writes do not retrigger);
- owned children (Jobs, Pods, ConfigMaps, Deployments, Services, PVCs, NetworkPolicies) requeue their
  controller owner;
- pods requeue the object they run for, by their `substratus.ai/<kind>` label (Job and Deployment pods are
  owned by the Job/ReplicaSet): their status says why a run or a Server fails (status/pods.py);
- dependencies requeue dependents through field indexes when they appear, vanish or change readiness:
  Model -> Models (spec.model.name), Notebooks, Servers; Dataset -> Models (spec.dataset.name), Notebooks;
- a workload ServiceAccount's events requeue every object of its namespace, and (Dataset controller) a
  namespace with none is released (controllers/release.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from substratus_controller.constants import GROUP, LABEL_MANAGED_BY, MANAGED_BY_VALUE, NETWORK_POLICY_NONE, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.resources import DATASETS, MODELS, NOTEBOOKS, SERVERS
from substratus_controller.runtime import predicates
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.cache import CachedResource
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.controller import Controller, Request
from substratus_controller.runtime.manager import Manager, ManagerOptions
from substratus_controller.runtime.store import projection

from .caches import INDEX_PARENT, Caches, parent_keys, parent_name, spec_ref
from .engine import Reconciler
from .operator import Operator
from .release import sa_requests

INDEX_MODEL_REF = "spec.model.name"
INDEX_DATASET_REF = "spec.dataset.name"
_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"
_SMALL = projection("metadata", "status")


def _ref_index(field: str) -> Callable[[JSON], Iterable[str]]:
    def index(obj: JSON) -> Iterable[str]:
        name = spec_ref(obj, field)
        return (f"{obj['metadata'].get('namespace')}/{name}",) if name else ()

    return index


def _dependents(cache: CachedResource, index: str) -> Callable[[JSON], Iterable[Request]]:
    def mapper(dep: JSON) -> Iterable[Request]:
        key = f"{dep['metadata'].get('namespace')}/{dep['metadata']['name']}"
        return [Request.of(o) for o in cache.by_index(index, key)]

    return mapper


def _pod_parent(kind: Kind) -> Callable[[JSON], Iterable[Request]]:
    def mapper(pod: JSON) -> Iterable[Request]:
        name = parent_name(pod, kind)
        return (Request(pod["metadata"].get("namespace"), name),) if name else ()

    return mapper


def _never(old: JSON, new: JSON) -> bool:
    """Updates requeue nothing (creates and deletes do)."""
    return False


def _status_changed(old: JSON, new: JSON) -> bool:
    return bool(old.get("status") != new.get("status"))


def _readiness_changed(old: JSON, new: JSON) -> bool:
    return bool((old.get("status") or {}).get("ready") != (new.get("status") or {}).get("ready"))


def build_caches(
    manager: Manager, *, sync_period: float | None, persistent_volumes: bool = False, network_policies: bool = False
) -> Caches:
    cache = manager.cache
    caches = Caches(
        datasets=cache.informer(DATASETS, resync_period=sync_period),
        models=cache.informer(MODELS, resync_period=sync_period),
        notebooks=cache.informer(NOTEBOOKS, resync_period=sync_period),
        servers=cache.informer(SERVERS, resync_period=sync_period),
        jobs=cache.informer(k8s.JOBS, transform=_SMALL, label_selector=_SELECTOR),
        pods=cache.informer(k8s.PODS, transform=_SMALL, label_selector=_SELECTOR),
        deployments=cache.informer(k8s.DEPLOYMENTS, label_selector=_SELECTOR),
        services=cache.informer(k8s.SERVICES, label_selector=_SELECTOR),
        configmaps=cache.informer(k8s.CONFIGMAPS, label_selector=_SELECTOR),
        serviceaccounts=cache.informer(k8s.SERVICEACCOUNTS, label_selector=_SELECTOR),
        pvcs=cache.informer(k8s.PERSISTENTVOLUMECLAIMS, label_selector=_SELECTOR),
        pvs=cache.informer(k8s.PERSISTENTVOLUMES, label_selector=_SELECTOR) if persistent_volumes else None,
        networkpolicies=cache.informer(k8s.NETWORKPOLICIES, label_selector=_SELECTOR) if network_policies else None,
    )
    for refs in (caches.models, caches.notebooks):
        refs.add_indexer(INDEX_MODEL_REF, _ref_index("model"))
        refs.add_indexer(INDEX_DATASET_REF, _ref_index("dataset"))
    caches.servers.add_indexer(INDEX_MODEL_REF, _ref_index("model"))
    caches.pods.add_indexer(INDEX_PARENT, parent_keys)
    return caches


def setup(manager: Manager, *, ctx: RenderContext, workers: int = 4, sync_period: float | None = None) -> Operator:
    """Register the caches and the four controllers on `manager`; return the shared Operator."""
    caches = build_caches(manager, sync_period=sync_period, persistent_volumes=ctx.cloud.USES_PERSISTENT_VOLUMES,
                          network_policies=ctx.notebook_network_policy != NETWORK_POLICY_NONE)  # fmt: skip
    op = Operator(client=manager.client, caches=caches, recorder=manager.recorder, ctx=ctx)

    def controller(kind: Kind, own: CachedResource, children: list[CachedResource]) -> Controller:
        c = Controller(kind.singular, Reconciler(op, kind), workers=workers, metrics=manager.metrics)
        c.for_kind(own, predicate=predicates.spec_or_metadata_changed)
        for child in children:
            c.owns(child, kind=kind.value, group=GROUP)
        c.watches(caches.serviceaccounts, sa_requests(caches, kind), predicate=_never)
        manager.add_controller(c)
        return c

    jobs, cms = caches.jobs, caches.configmaps
    dataset = controller(Kind.DATASET, caches.datasets, [jobs, cms])
    dataset.watches(caches.pods, _pod_parent(Kind.DATASET), predicate=_status_changed)
    model = controller(Kind.MODEL, caches.models, [jobs, cms])
    model.watches(caches.pods, _pod_parent(Kind.MODEL), predicate=_status_changed)
    model.watches(caches.models, _dependents(caches.models, INDEX_MODEL_REF), predicate=_readiness_changed)
    model.watches(caches.datasets, _dependents(caches.models, INDEX_DATASET_REF), predicate=_readiness_changed)
    policies = [caches.networkpolicies] if caches.networkpolicies is not None else []
    notebook = controller(Kind.NOTEBOOK, caches.notebooks, [jobs, caches.pods, cms, caches.pvcs, *policies])
    notebook.watches(caches.models, _dependents(caches.notebooks, INDEX_MODEL_REF), predicate=_readiness_changed)
    notebook.watches(caches.datasets, _dependents(caches.notebooks, INDEX_DATASET_REF), predicate=_readiness_changed)
    server = controller(Kind.SERVER, caches.servers, [jobs, caches.deployments, caches.services, cms])
    server.watches(caches.models, _dependents(caches.servers, INDEX_MODEL_REF), predicate=_readiness_changed)
    server.watches(caches.pods, _pod_parent(Kind.SERVER), predicate=_status_changed)
    return op


def build_manager(
    client: Client, options: ManagerOptions, *, ctx: RenderContext, workers: int = 4, sync_period: float | None = None
) -> tuple[Manager, Operator]:
    manager = Manager(client, options)
    return manager, setup(manager, ctx=ctx, workers=workers, sync_period=sync_period)
