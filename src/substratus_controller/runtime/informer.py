"""Informer: keeps a Store equal to the API server's view of one resource and tells handlers what changed.

Contract (client-go reflector semantics):
- LIST (paginated), then WATCH from the list's resourceVersion with bookmarks and a server timeout drawn
  at random from [min_watch_timeout, 2 * min_watch_timeout). The resourceVersion of every event, BOOKMARK
  included, becomes the one the next WATCH resumes from.
- An ERROR event with code 410 (or a 410 answer) means the resourceVersion was compacted: relist at once.
  A relist replaces the store and emits `on_add` for new objects, `on_update` for changed ones (by
  resourceVersion) and `on_delete` for objects that vanished meanwhile (synthetic deletes).
- A watch silent for `idle_timeout` seconds (a frozen connection) is abandoned and re-watched from the
  last resourceVersion. Other failures retry with `Backoff` (0.8 s -> 30 s with jitter). The loop itself
  is the runtime's one watch loop (watchloop.py); this module adds the store and the handlers.
- `has_synced()` turns true once the first LIST is in the store and its events are delivered.
- `resync_period` (optional) re-delivers every stored object as `on_update(obj, obj)` periodically.
- Waiting (the retry backoff, the resync period) is measured on the injected `Clock` (RealClock by default).
- Handlers are plain callbacks run on the event loop; they must be quick (e.g. enqueue a key). Handlers
  added after sync first receive `on_add` for every stored object.
- `run()` loops until cancelled; it never returns on transient errors. Run again after a cancel, it
  resumes watching from the last resourceVersion (and relists only if that is gone). Long relists yield to
  the event loop every `yield_every` objects so other tasks keep running.
- `observe(obj)` is write-through for reads: `get()` answers with a writer's latest result until the watch
  stream catches up; the store and the events always follow the watch stream itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from substratus_controller.jsontypes import JSON

from . import gcpause
from .backoff import Backoff
from .client import Client
from .clock import Clock, RealClock
from .errors import ApiError
from .metrics import RuntimeMetrics
from .resource import Resource
from .store import IndexFunc, Store, Transform, object_key
from .watchloop import RELISTED, WatchLoop
from .watchstream import WatchEvent

log = structlog.get_logger("substratus.runtime.informer")


class EventHandler(Protocol):
    """Receives store changes. Objects are the stored (stripped/projected) dicts; do not mutate them."""

    def on_add(self, obj: JSON) -> None: ...

    def on_update(self, old: JSON, new: JSON) -> None: ...

    def on_delete(self, obj: JSON) -> None: ...


class EventSource(Protocol):
    """Anything that delivers store changes to handlers (an Informer, or the cache's view of several)."""

    def add_handler(self, handler: EventHandler) -> None: ...


@dataclass(frozen=True, slots=True)
class FuncHandler:
    """An EventHandler from optional callables (a missing one ignores that event)."""

    add: Callable[[JSON], None] | None = None
    update: Callable[[JSON, JSON], None] | None = None
    delete: Callable[[JSON], None] | None = None

    def on_add(self, obj: JSON) -> None:
        if self.add:
            self.add(obj)

    def on_update(self, old: JSON, new: JSON) -> None:
        if self.update:
            self.update(old, new)

    def on_delete(self, obj: JSON) -> None:
        if self.delete:
            self.delete(obj)


def _rv(obj: JSON) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


def _newer(obj: JSON, than: JSON | None) -> bool:
    """Whether `obj` is a later version than `than` (resourceVersions compared as etcd revisions when numeric)."""
    if than is None:
        return True
    a, b = _rv(obj), _rv(than)
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return a != b


class Informer:
    """List+watch one resource (optionally one namespace and selectors) into a Store."""

    def __init__(
        self,
        client: Client,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Transform | None = None,
        indexers: dict[str, IndexFunc] | None = None,
        metrics: RuntimeMetrics | None = None,
        min_watch_timeout: float = 300.0,
        idle_timeout: float = 120.0,
        resync_period: float | None = None,
        page_size: int = 100,
        yield_every: int = 200,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.store = Store(transform=transform, indexers=indexers)
        self.metrics = metrics or client.metrics
        self.min_watch_timeout = min_watch_timeout
        self.idle_timeout = idle_timeout
        self.resync_period = resync_period
        self.page_size = page_size
        self.yield_every = yield_every
        self._handlers: list[EventHandler] = []
        self._synced = asyncio.Event()
        self._written: dict[str, JSON | None] = {}  # write-through overlay (see observe)
        self._label = str(resource) if namespace is None else f"{resource}@{namespace}"
        # One loop for the informer's life: a stopped and re-run informer resumes from its resourceVersion.
        self._watch = WatchLoop(
            client,
            resource,
            namespace,
            relist=self._relist,
            label_selector=label_selector,
            field_selector=field_selector,
            timeout_seconds=lambda: int(min_watch_timeout * (1 + random.random())),
            idle_timeout=idle_timeout,
            backoff=backoff or Backoff(),
            clock=clock or RealClock(),
            on_restart=self._restarted,
            on_error=self._failed,
        )

    # ------------------------------------------------------------------------------------------- API
    @property
    def clock(self) -> Clock:
        """The clock the retries, the resync and the loop's waits are measured on."""
        return self._watch.clock

    @property
    def backoff(self) -> Backoff:
        """The retry backoff of the list/watch loop (replaceable, e.g. by a recording one in tests)."""
        return self._watch.backoff

    @backoff.setter
    def backoff(self, value: Backoff) -> None:
        self._watch.backoff = value

    @property
    def resource_version(self) -> str:
        """The resourceVersion the next watch resumes from."""
        return self._watch.resource_version or ""

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._synced.wait(), timeout)

    def add_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)
        if self.has_synced():
            for obj in self.store:
                handler.on_add(obj)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        if not self.store.has_indexer(name):
            self.store.add_indexer(name, func)

    def observe(self, obj: JSON) -> None:
        """Write-through: remember an object just returned by a write, so reads see it before its watch event.

        The store and the events keep following the watch stream (so other handlers still see every change,
        with truthful old and new states); `get` answers from this overlay until the watch delivers the same
        or a later resourceVersion.
        """
        key = object_key(obj)
        current = self.get(key)
        if current is not None and not _newer(obj, current):
            return
        obj.setdefault("apiVersion", self.resource.api_version)
        obj.setdefault("kind", self.resource.kind)
        self._written[key] = self.store.prepare(obj)

    def forget(self, obj: JSON) -> None:
        """Write-through of a delete: `get` answers None until the watch delivers the deletion."""
        self._written[object_key(obj)] = None

    def get(self, key: str) -> JSON | None:
        """The freshest known state of `key`: a pending write-through, else the store."""
        if key in self._written:
            return self._written[key]
        return self.store.get(key)

    def _settle(self, key: str, obj: JSON | None) -> None:
        """Drop a write-through entry once the watch stream has caught up with it."""
        if key not in self._written:
            return
        written = self._written[key]
        if obj is None or written is None or not _newer(written, obj):
            del self._written[key]

    async def run(self) -> None:
        """List and watch until cancelled."""
        tasks: list[asyncio.Task[None]] = []
        if self.resync_period:
            tasks.append(asyncio.create_task(self._resync_loop(), name=f"resync {self._label}"))
        try:
            await self._list_watch_loop()
        finally:
            for task in tasks:
                task.cancel()

    # ------------------------------------------------------------------------------------------- internals
    async def _list_watch_loop(self) -> None:
        async with contextlib.aclosing(self._watch.events()) as events:
            async for event in events:
                if event.type != RELISTED:
                    self._deliver(event)

    def _restarted(self, reason: str, error: ApiError | None) -> None:
        self.metrics.informer_watch_restarts.labels(self._label, reason).inc()
        if reason == "idle":
            # Quiet resources look exactly like frozen connections (v1.20 sends nothing on an idle watch),
            # so this is routine: re-watch from the same resourceVersion.
            log.debug("watch_idle_rewatch", resource=self._label, idle_timeout=self.idle_timeout)
        elif reason == "gone":
            log.info("watch_expired_relist", resource=self._label, message=error.message if error else "")

    def _failed(self, exc: ApiError, delay: float) -> None:
        log.warning(
            "list_watch_failed", resource=self._label, code=exc.code, error=exc.message, retry_in=round(delay, 2)
        )

    async def _relist(self) -> str:
        """LIST into the store (emitting the differences); the list's resourceVersion."""
        with gcpause.paused():  # see gcpause: bulk decoding must not trigger collections over the cache
            return await self._relist_paused()

    async def _relist_paused(self) -> str:
        self.metrics.informer_relists.labels(self._label).inc()
        fresh: dict[str, JSON] = {}
        token: str | None = None
        while True:
            page = await self.client.list(
                self.resource,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=self.page_size,
                continue_=token,
            )
            for raw in page.get("items") or ():
                raw.setdefault("apiVersion", self.resource.api_version)
                raw.setdefault("kind", self.resource.kind)
                obj = self.store.prepare(raw)
                fresh[object_key(obj)] = obj
            token = page.get("metadata", {}).get("continue")
            if not token:
                list_rv = str(page.get("metadata", {}).get("resourceVersion", ""))
                break
        store = self.store
        count = 0
        for key in list(store.keys()):
            if key not in fresh:
                old = store.delete(key)
                if old is not None:
                    self._emit_delete(old)
                count += 1
                if count % self.yield_every == 0:
                    await asyncio.sleep(0)
        for key in list(self._written):
            self._settle(key, fresh.get(key))
        for obj in fresh.values():
            old = store.upsert(obj)
            if old is None:
                self._emit_add(obj)
            elif _rv(old) != _rv(obj):
                self._emit_update(old, obj)
            count += 1
            if count % self.yield_every == 0:
                await asyncio.sleep(0)
        self.metrics.informer_objects.labels(self._label).set(len(store))
        if not self._synced.is_set():
            log.info("informer_synced", resource=self._label, objects=len(store))
            self._synced.set()
        return list_rv

    def _deliver(self, event: WatchEvent) -> None:
        """One watch event into the store, then to the handlers."""
        raw = event.object
        raw.setdefault("apiVersion", self.resource.api_version)
        raw.setdefault("kind", self.resource.kind)
        store = self.store
        obj = store.prepare(raw)
        key = object_key(obj)
        if event.type == "DELETED":
            store.delete(key)
            self._settle(key, None)
            self._emit_delete(obj)  # the final state, as client-go delivers it
        else:
            old = store.upsert(obj)
            self._settle(key, obj)
            if old is None:
                self._emit_add(obj)
            else:
                self._emit_update(old, obj)
        self.metrics.informer_objects.labels(self._label).set(len(store))

    async def _resync_loop(self) -> None:
        assert self.resync_period is not None
        await self._synced.wait()
        while True:
            await self.clock.sleep(self.resync_period)
            for obj in self.store:
                self._emit_update(obj, obj)

    def _emit_add(self, obj: JSON) -> None:
        for h in self._handlers:
            self._call(h.on_add, obj)

    def _emit_update(self, old: JSON, new: JSON) -> None:
        for h in self._handlers:
            self._call(h.on_update, old, new)

    def _emit_delete(self, obj: JSON) -> None:
        for h in self._handlers:
            self._call(h.on_delete, obj)

    def _call(self, fn: Callable[..., None], *args: JSON) -> None:
        """A failing handler is logged and skipped; it must not stop the informer or other handlers."""
        try:
            fn(*args)
        except Exception:
            log.exception("event_handler_failed", resource=self._label, handler=getattr(fn, "__qualname__", str(fn)))
