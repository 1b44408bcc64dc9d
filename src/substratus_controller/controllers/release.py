"""A namespace's cloud identity is taken back when its last object goes.

When a reconcile finds its object gone, or a workload ServiceAccount appears in a namespace that holds no
object of the four kinds (the controller restarted after the last one was deleted), `release_namespace`:
1. unbinds the namespace's ServiceAccounts from its cloud principal (`CloudDriver.unbind_identity`), then
2. deletes those ServiceAccounts (ours only: labelled `managed-by: substratus` and named as ours, each by
   uid), and forgets them in the cache at once.

Invariants:
- Nothing is released while any object of the namespace is cached (being deleted included).
- An object created meanwhile loses nothing: deleting a ServiceAccount requeues every object of its
  namespace (`sa_requests`), and their reconciles, seeing it gone, bind and apply it again.
- The driver's mount objects (AWS: the namespace's PersistentVolume and claim) are kept: a Retained volume
  whose claim was deleted cannot bind again, and the volume reaches only the namespace's own prefix.
- A failed unbind raises RetryableError before anything is deleted, so it is retried, not forgotten.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import structlog

from substratus_controller.cloud.base import IdentityError
from substratus_controller.constants import LABEL_MANAGED_BY, MANAGED_BY_VALUE, WORKLOAD_SERVICE_ACCOUNTS, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.controller import Request
from substratus_controller.runtime.errors import NotFound

from .caches import Caches
from .operator import Operator
from .steps import bounded

log = structlog.get_logger("substratus.release")


def is_workload_account(sa: JSON) -> bool:
    """One of the shared ServiceAccounts this controller creates (never a user's, whatever its name)."""
    meta = sa.get("metadata") or {}
    return (
        meta.get("name") in WORKLOAD_SERVICE_ACCOUNTS
        and (meta.get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY_VALUE
    )


def namespace_in_use(caches: Caches, namespace: str) -> bool:
    return any(caches.of(RESOURCE_OF[kind]).list(namespace) for kind in Kind)


def sa_requests(caches: Caches, kind: Kind) -> Callable[[JSON], Iterable[Request]]:
    """Map a workload ServiceAccount's event to the `kind` objects of its namespace; for the Dataset
    controller, to the ServiceAccount's own name when the namespace holds no object (a reconcile that
    finds no such Dataset releases the namespace)."""

    def mapper(sa: JSON) -> Iterable[Request]:
        if not is_workload_account(sa):
            return []
        namespace = str(sa["metadata"].get("namespace"))
        requests = [Request.of(o) for o in caches.of(RESOURCE_OF[kind]).list(namespace)]
        if kind is Kind.DATASET and not namespace_in_use(caches, namespace):
            requests.append(Request(namespace=namespace, name=str(sa["metadata"]["name"])))
        return requests

    return mapper


async def release_namespace(op: Operator, namespace: str) -> list[str]:
    """Unbind and delete the namespace's workload ServiceAccounts when it holds no object; their names."""
    if not namespace or namespace_in_use(op.caches, namespace):
        return []
    accounts = [sa for sa in op.caches.serviceaccounts.list(namespace) if is_workload_account(sa)]
    if not accounts:
        return []
    names = sorted(str(sa["metadata"]["name"]) for sa in accounts)
    try:
        op.cloud.workload_principal(namespace)
    except IdentityError:
        pass  # nothing could have been bound
    else:
        await bounded(
            op.cloud.unbind_identity(service_accounts=names, namespace=namespace),
            f"unbinding namespace {namespace} from its cloud identity",
        )
    for sa in accounts:
        meta = sa["metadata"]
        with contextlib.suppress(NotFound):
            await op.client.delete(k8s.SERVICEACCOUNTS, meta["name"], namespace, uid=meta.get("uid"))
        op.caches.serviceaccounts.forget(sa)
    log.info("namespace_released", namespace=namespace, service_accounts=names)
    return names
