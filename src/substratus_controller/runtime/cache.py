"""The manager's shared cache: one informer per (resource, namespace), shared by every controller.

Contract:
- `Cache.informer(resource, transform=...)` returns the same `CachedResource` for the same resource; asking
  again with a different transform is an error (one store per resource).
- With `namespaces=None` a resource is watched cluster-wide; otherwise one Informer per namespace, merged
  behind `CachedResource` (reads route by namespace, index lookups merge across namespaces). Cluster-scoped
  resources always use one cluster-wide informer.
- Readers get the stored dicts (managedFields stripped, transformed); they must not mutate them.
- `run()` runs every informer created before it was called; `has_synced()` is true when all have synced.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from typing import Any

from substratus_controller.jsontypes import JSON

from .client import Client
from .informer import EventHandler, Informer
from .metrics import RuntimeMetrics
from .resource import Resource
from .store import IndexFunc, Transform


class CachedResource:
    """A read view over the informer(s) of one resource, plus handler/indexer registration."""

    def __init__(self, resource: Resource, informers: dict[str | None, Informer], transform: Transform | None,
                 label_selector: str | None = None) -> None:  # fmt: skip
        self.resource = resource
        self.informers = informers
        self.transform = transform
        self.label_selector = label_selector

    def add_handler(self, handler: EventHandler) -> None:
        for inf in self.informers.values():
            inf.add_handler(handler)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        for inf in self.informers.values():
            inf.add_indexer(name, func)

    def has_synced(self) -> bool:
        return all(inf.has_synced() for inf in self.informers.values())

    def observe(self, obj: JSON) -> None:
        """Write-through of an object returned by a write (see Informer.observe)."""
        inf = self._for(obj.get("metadata", {}).get("namespace"))
        if inf is not None:
            inf.observe(obj)

    def forget(self, obj: JSON) -> None:
        inf = self._for(obj.get("metadata", {}).get("namespace"))
        if inf is not None:
            inf.forget(obj)

    def _for(self, namespace: str | None) -> Informer | None:
        if None in self.informers:
            return self.informers[None]
        return self.informers.get(namespace)

    def get(self, namespace: str | None, name: str) -> JSON | None:
        """The freshest known state (including this process's own recent writes, see Informer.observe)."""
        inf = self._for(namespace)
        if inf is None:
            return None
        return inf.get(f"{namespace}/{name}" if namespace and self.resource.namespaced else name)

    def list(self, namespace: str | None = None) -> list[JSON]:
        if namespace is not None:
            inf = self._for(namespace)
            return inf.store.list(namespace) if inf else []
        return [obj for inf in self.informers.values() for obj in inf.store.list()]

    def by_index(self, index: str, value: str) -> builtins.list[JSON]:
        return [obj for inf in self.informers.values() for obj in inf.store.by_index(index, value)]

    def __len__(self) -> int:
        return sum(len(inf.store) for inf in self.informers.values())


class Cache:
    """Creates and runs the shared informers (see module docstring)."""

    def __init__(
        self,
        client: Client,
        *,
        namespaces: Sequence[str] | None = None,
        metrics: RuntimeMetrics | None = None,
        informer_options: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.namespaces = list(namespaces) if namespaces else None
        self.metrics = metrics or client.metrics
        self.informer_options = informer_options or {}
        self._resources: dict[Resource, CachedResource] = {}
        self._started = False

    def informer(
        self,
        resource: Resource,
        *,
        transform: Transform | None = None,
        label_selector: str | None = None,
        resync_period: float | None = None,
    ) -> CachedResource:
        """The shared informer(s) of `resource`; the first caller decides transform, selector and resync."""
        existing = self._resources.get(resource)
        if existing is not None:
            if existing.transform is not transform or existing.label_selector != label_selector:
                raise ValueError(f"{resource} is already cached with a different transform or label selector")
            return existing
        if self._started:
            raise RuntimeError(f"cannot add an informer for {resource} after the cache started")
        scopes: list[str | None] = (
            [None] if self.namespaces is None or not resource.namespaced else list(self.namespaces)
        )
        options = {**self.informer_options, **({"resync_period": resync_period} if resync_period else {})}
        informers = {
            ns: Informer(
                self.client,
                resource,
                namespace=ns,
                transform=transform,
                label_selector=label_selector,
                metrics=self.metrics,
                **options,
            )
            for ns in scopes
        }
        cached = CachedResource(resource, informers, transform, label_selector)
        self._resources[resource] = cached
        return cached

    @property
    def resources(self) -> list[CachedResource]:
        return list(self._resources.values())

    def has_synced(self) -> bool:
        return all(r.has_synced() for r in self._resources.values())

    async def wait_synced(self, timeout: float | None = None) -> None:
        async def all_synced() -> None:
            for r in self._resources.values():
                for inf in r.informers.values():
                    await inf.wait_synced()

        await asyncio.wait_for(all_synced(), timeout)

    def tasks(self) -> list[tuple[str, Informer]]:
        """(name, informer) pairs for the manager to run and supervise."""
        self._started = True
        return [
            (f"informer {inf.resource}" + (f"@{ns}" if ns else ""), inf)
            for r in self._resources.values()
            for ns, inf in r.informers.items()
        ]
