"""Manager: runs the cache, the controllers and their helpers as one supervised process.

Contract:
- Start order: HTTP servers (metrics, probes) -> Events recorder -> informers -> wait for every cache to sync
  (or fail after `cache_sync_timeout`) -> [leader election: wait until leading] -> controllers and runnables.
- Readiness (`/readyz`): caches synced and, with election, the elector alive (leading or standing by).
  Health (`/healthz`): every supervised task alive.
- Supervision: every task is watched; one that ends or fails (an informer, a worker loop, the elector
  losing its lease) stops the manager, which then raises `ManagerError` naming the task, so the process
  exits non-zero instead of running on as a zombie.
- `stop()` (e.g. on SIGTERM) shuts down gracefully: controllers stop taking keys and drain in-flight
  reconciles (bounded by `shutdown_timeout`), then the lease is released so another replica takes over at
  once, then informers, the recorder and the servers stop. After losing the lease nothing drains: in-flight
  reconciles are cancelled so that no write happens without leadership.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from .cache import Cache
from .client import Client
from .controller import Controller
from .events import EventRecorder
from .health import HttpServers, MetricsSecurity, Probes
from .leaderelection import LeaderElector
from .looplag import watch_lag
from .metrics import RuntimeMetrics
from .metricsauth import MetricsAuthorizer, serving_context

log = structlog.get_logger("substratus.runtime.manager")


class ManagerError(RuntimeError):
    """The manager stopped because something it supervises failed (the message says what)."""


@dataclass
class ManagerOptions:
    """Manager settings; defaults follow controller-runtime and the upstream operator."""

    metrics_address: str | None = ":8080"
    probe_address: str | None = ":8081"
    # Secure metrics (controller-runtime's WithAuthenticationAndAuthorization): /metrics over HTTPS, each
    # request's bearer token checked with a TokenReview and a SubjectAccessReview (get on /metrics). Probes
    # must then have an address of their own.
    metrics_secure: bool = False
    # With metrics_secure: a directory holding tls.crt and tls.key to serve with; "" generates a self-signed
    # certificate in memory at start.
    metrics_cert_dir: str = ""
    namespaces: Sequence[str] | None = None
    leader_election: bool = False
    leader_election_id: str = "df3bdd2d.substratus.ai"
    leader_election_namespace: str = "substratus"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str | None = None
    component: str = "substratus-controller"
    cache_sync_timeout: float = 120.0
    shutdown_timeout: float = 30.0
    informer_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Runnable:
    name: str
    start: Callable[[], Awaitable[None]]
    needs_leader: bool


class Manager:
    """See module docstring. Build it, add controllers, then `await run()`."""

    def __init__(
        self, client: Client, options: ManagerOptions | None = None, *, metrics: RuntimeMetrics | None = None
    ) -> None:
        self.client = client
        self.options = options or ManagerOptions()
        self.metrics = metrics or client.metrics
        self.identity = self.options.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        self.cache = Cache(
            client,
            namespaces=self.options.namespaces,
            metrics=self.metrics,
            informer_options=self.options.informer_options,
        )
        self.recorder = EventRecorder(client, component=self.options.component, instance=self.identity)
        self.controllers: list[Controller] = []
        self._runnables: list[_Runnable] = []
        self._tasks: dict[asyncio.Task[Any], str] = {}
        self._stop_requested: asyncio.Event | None = None
        self._elector_task: asyncio.Task[Any] | None = None
        self._synced = False
        self.leading = False
        self.probes = Probes(
            health={"tasks": self._tasks_alive},
            ready={"caches": lambda: self._synced, "leader-election": self._elector_alive},
        )
        self.servers = HttpServers(
            registry=self.metrics.registry,
            probes=self.probes,
            metrics_address=self.options.metrics_address,
            probe_address=self.options.probe_address,
            metrics_security=self._metrics_security(),
        )

    def _metrics_security(self) -> MetricsSecurity | None:
        if not self.options.metrics_secure:
            return None
        cert = serving_context(self.options.metrics_cert_dir)
        log.info("metrics_secure", cert_dir=self.options.metrics_cert_dir or None,
                 self_signed=not self.options.metrics_cert_dir)  # fmt: skip
        return MetricsSecurity(authorizer=MetricsAuthorizer(self.client), ssl_context=cert.context)

    # ------------------------------------------------------------------------------------------- building
    def add_controller(self, controller: Controller) -> None:
        self.controllers.append(controller)

    def add_runnable(self, name: str, start: Callable[[], Awaitable[None]], *, needs_leader: bool = True) -> None:
        """Another long-running coroutine to supervise (started after sync, and after election if needed)."""
        self._runnables.append(_Runnable(name, start, needs_leader))

    def stop(self) -> None:
        """Request a graceful shutdown (safe to call from a signal handler)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    # ------------------------------------------------------------------------------------------- probes
    def _tasks_alive(self) -> bool:
        return all(not t.done() for t in self._tasks)

    def _elector_alive(self) -> bool:
        if not self.options.leader_election:
            return True
        return self._elector_task is not None and not self._elector_task.done()

    # ------------------------------------------------------------------------------------------- running
    def _spawn(self, name: str, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks[task] = name
        return task

    async def _until(self, *waits: asyncio.Future[Any]) -> set[asyncio.Future[Any]]:
        """Wait for any of `waits`, a stop request, or a supervised task ending; raise on the latter."""
        assert self._stop_requested is not None
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            done, _ = await asyncio.wait({*waits, stop, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        for task in done:
            if task in self._tasks:
                name = self._tasks[task]
                exc = None if task.cancelled() else task.exception()
                raise ManagerError(f"{name} stopped unexpectedly: {exc!r}" if exc else f"{name} stopped unexpectedly")
        return set(done)

    async def run(self) -> None:
        """Run until `stop()`; raise ManagerError when a supervised part fails."""
        self._stop_requested = asyncio.Event()
        fatal: BaseException | None = None
        await self.servers.start()
        try:
            self._spawn("event-recorder", self.recorder.run())
            self._spawn("event-loop-lag", watch_lag(self.metrics))
            for name, informer in self.cache.tasks():
                self._spawn(name, informer.run())
            sync = asyncio.ensure_future(self.cache.wait_synced())
            try:
                done = await asyncio.wait_for(self._until(sync), self.options.cache_sync_timeout)
            except TimeoutError:
                raise ManagerError(f"caches did not sync within {self.options.cache_sync_timeout:g}s") from None
            finally:
                sync.cancel()
            if sync not in done:
                return  # stop requested before sync
            self._synced = True
            log.info("caches_synced", resources=[str(r.resource) for r in self.cache.resources])
            for r in self._runnables:
                if not r.needs_leader:
                    self._spawn(r.name, r.start())
            if self.options.leader_election:
                leading = asyncio.Event()
                elector = LeaderElector(
                    self.client,
                    name=self.options.leader_election_id,
                    namespace=self.options.leader_election_namespace,
                    identity=self.identity,
                    lease_duration=self.options.lease_duration,
                    renew_deadline=self.options.renew_deadline,
                    retry_period=self.options.retry_period,
                    metrics=self.metrics,
                    on_started_leading=leading.set,
                )
                self._elector_task = self._spawn("leader-election", elector.run())
                log.info("leader_election_waiting", lease=self.options.leader_election_id, identity=self.identity)
                became = asyncio.ensure_future(leading.wait())
                try:
                    done = await self._until(became)
                finally:
                    became.cancel()
                if became not in done:
                    return
                self.leading = True
                log.info("leader_elected", identity=self.identity)
            for c in self.controllers:
                self._spawn(f"controller {c.name}", c.run())
            for r in self._runnables:
                if r.needs_leader:
                    self._spawn(r.name, r.start())
            await self._until()
        except BaseException as exc:
            fatal = exc
            raise
        finally:
            await self._shutdown(fatal)

    async def _shutdown(self, fatal: BaseException | None) -> None:
        lost_lease = isinstance(fatal, ManagerError) and self._elector_task is not None and self._elector_task.done()
        log.info("manager_stopping", reason=str(fatal) if fatal else "stop requested")
        # 1. controllers: drain (graceful) or cancel at once (no leadership, or a fatal failure).
        for c in self.controllers:
            await c.shutdown(drain=fatal is None, timeout=self.options.shutdown_timeout)
        controller_tasks = [t for t, n in self._tasks.items() if n.startswith("controller ")]
        await _cancel(controller_tasks)
        # 2. the lease: cancelling the elector releases it (unless it was lost).
        if self._elector_task is not None and not lost_lease:
            await _cancel([self._elector_task])
        # 3. everything else; the recorder gets a moment to send what it holds.
        with contextlib.suppress(Exception):
            await self.recorder.flush(timeout=2.0)
        await _cancel(list(self._tasks))
        await self.servers.stop()
        self.metrics.leader_election_master_status.labels(self.options.leader_election_id).set(0)
        log.info("manager_stopped")


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


def in_cluster_namespace(default: str = "substratus") -> str:
    """The namespace this pod runs in (service account mount), else `default`."""
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip() or default
    return default
