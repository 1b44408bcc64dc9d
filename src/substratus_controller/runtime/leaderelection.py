"""Lease-based leader election (client-go's `tools/leaderelection` over a coordination.k8s.io/v1 Lease).

One `LeaderElector` per process and Lease. `run()` acquires the Lease, renews it, and raises `LeadershipLost`
when it can no longer prove it holds it; the caller must then stop writing at once (the manager exits
non-zero and lets Kubernetes restart it, like controller-runtime).

Semantics copied from client-go's `tryAcquireOrRenew`:
- GET the Lease; create it when missing. A Lease held by someone else is respected while
  `observed_time + leaseDurationSeconds > now`, where `observed_time` is the LOCAL monotonic time at which this
  process last saw the Lease's spec change. The holder's `renewTime` is never compared with our clock.
- Otherwise write holderIdentity=self, renewTime=now, leaseDurationSeconds, acquireTime (kept while renewing),
  leaseTransitions (+1 when the holder changes), with optimistic concurrency: the PUT carries the
  resourceVersion that was read, so a concurrent writer makes it fail with 409 and exactly one wins.
- The leader renews optimistically from its cached Lease first (no GET) and falls back to GET + PUT.
- Release (on cancellation, when `release_on_cancel`) writes holderIdentity="" with leaseDurationSeconds=1,
  so a waiting candidate may take over at its next attempt.

Where this implementation deliberately differs from client-go (all in the direction of safety or speed):
- The renew deadline counts from the start of the last successful renewal (client-go: from the start of the
  current renew round, up to one retry period later). So a leader that cannot renew stops leading at most
  `renew_deadline` after its last successful write, leaving `lease_duration - renew_deadline` of margin
  before any other candidate may take over.
- A leader that reads the Lease and finds another holder stops leading at once instead of retrying until the
  deadline (it was overwritten; writing on would be split-brain).
- A candidate wakes up when the observed lease expires (not only on its jittered retry tick), and, when
  `watch_lease` is on, watches the Lease so it learns of renewals and releases as they happen. So a released
  Lease is taken over within about one round trip and an abandoned one within about `lease_duration` of the
  holder's last renewal. The watch only accelerates; the polling loop alone is correct (and is used when
  RBAC forbids `watch` on leases).
- A release answered 409 (our cached Lease is stale, e.g. a renewal cut short by the cancellation landed
  anyway) re-reads the Lease once and releases it if it still names us, so SIGTERM hands over promptly.
- `on_stopped_leading` is called only if this process led, right before the Lease is released (so the
  caller stops writing before another replica can start), and `on_new_leader` never reports "".

Invariants:
- `is_leader()` is true only between `on_started_leading` and `on_stopped_leading`; the gauge
  `leader_election_master_status{name}` is 1 exactly then.
- Every API call has a timeout; in the renew loop no call outlives the renew deadline.
- `lease_duration > renew_deadline > jitter_factor * retry_period` (checked, as client-go does).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import structlog

from substratus_controller.jsontypes import JSON

from .backoff import Backoff
from .client import Client
from .clock import Clock, RealClock
from .errors import AlreadyExists, ApiError, Conflict, Forbidden, NotFound
from .metrics import RuntimeMetrics
from .resources import LEASES
from .times import micro_time
from .watchloop import WatchLoop

__all__ = ["LeaderElectionRecord", "LeaderElector", "LeadershipLost", "default_identity"]

log = structlog.get_logger("substratus.runtime.leaderelection")

# Wake up this long after the observed expiry, so that the lease is surely expired by our own check.
_EXPIRY_MARGIN = 0.01


class LeadershipLost(Exception):
    """Raised by `LeaderElector.run()` when this process stopped being the leader without being cancelled.

    `reason` is `renew_deadline_exceeded` (no successful renewal within the renew deadline) or `lease_taken`
    (the Lease names another holder). The caller must stop writing and should exit non-zero.
    """

    def __init__(self, name: str, identity: str, reason: str) -> None:
        super().__init__(f"leader election lost for lease {name!r} by {identity!r}: {reason}")
        self.name = name
        self.identity = identity
        self.reason = reason


def default_identity() -> str:
    """hostname + "_" + a random UUID, unique per process (like controller-runtime's default)."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class LeaderElectionRecord:
    """The election state kept in a Lease's spec (client-go's LeaderElectionRecord)."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    leader_transitions: int = 0

    @classmethod
    def from_spec(cls, spec: JSON | None) -> LeaderElectionRecord:
        spec = spec or {}
        return cls(
            holder_identity=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            leader_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> JSON:
        spec: JSON = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.leader_transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


class LeaderElector:
    """Elects one leader among the processes sharing a Lease `namespace/name`.

    Contract:
    - `await run()` blocks until this process leads, calls `on_started_leading()`, then renews every
      `retry_period`. It never returns: it raises `LeadershipLost` after calling `on_stopped_leading()` when
      renewal fails for `renew_deadline` or another holder is seen; on cancellation while leading it calls
      `on_stopped_leading()`, releases the Lease when `release_on_cancel`, and re-raises CancelledError.
    - Callbacks are plain functions called on the event loop; they must be quick (schedule work, set flags).
      An exception from a callback propagates out of `run()` (releasing the Lease first when leading).
    - `wait_leading()` returns once this process leads. `leader()` is the last holder observed ("" if none).
    - One `run()` at a time per elector. Not thread-safe.
    """

    def __init__(
        self,
        client: Client,
        *,
        name: str,
        namespace: str,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        jitter_factor: float = 1.2,
        release_on_cancel: bool = True,
        watch_lease: bool = True,
        request_timeout: float | None = None,
        metrics: RuntimeMetrics | None = None,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if lease_duration < 1:
            raise ValueError("lease_duration must be at least 1 second (the Lease stores whole seconds)")
        if not lease_duration > renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if not renew_deadline > jitter_factor * retry_period:
            raise ValueError("renew_deadline must be greater than jitter_factor * retry_period")
        if retry_period <= 0 or jitter_factor < 0:
            raise ValueError("retry_period must be positive and jitter_factor non-negative")
        self._client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.jitter_factor = jitter_factor
        self.release_on_cancel = release_on_cancel
        self.watch_lease = watch_lease
        self.request_timeout = request_timeout if request_timeout is not None else renew_deadline / 2
        self.metrics = metrics or RuntimeMetrics()
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._clock: Clock = clock or RealClock()
        self._rng = rng
        # The Lease as last read or written (its resourceVersion makes our PUTs conditional).
        self._lease: JSON | None = None
        self._observed = LeaderElectionRecord()
        self._observed_spec: JSON | None = None
        self._observed_time = float("-inf")
        self._reported_leader = ""
        self._last_attempt = float("-inf")
        self._leading = False
        self._leading_event = asyncio.Event()
        self._changed = asyncio.Event()
        self._gauge = self.metrics.leader_election_master_status.labels(name)

    # ------------------------------------------------------------------------------------------- public
    def is_leader(self) -> bool:
        """Whether this process currently leads (between on_started_leading and on_stopped_leading)."""
        return self._leading

    def leader(self) -> str:
        """The holder identity last observed on the Lease ("" when none or not yet read)."""
        return self._observed.holder_identity

    async def wait_leading(self) -> None:
        """Return once this process leads (immediately if it already does)."""
        await self._leading_event.wait()

    async def run(self) -> NoReturn:
        """Acquire, then renew until cancelled or lost. See the class docstring."""
        self._gauge.set(0)
        log.info("leader_election_started", lease=f"{self.namespace}/{self.name}", identity=self.identity)
        try:
            await self._acquire()
            self._start_leading()
            await self._renew()
        except asyncio.CancelledError:
            if self._leading:
                try:
                    self._stop_leading(reason="cancelled")
                finally:
                    if self.release_on_cancel:
                        await self._release()
            raise
        except LeadershipLost:
            raise
        except BaseException:
            if self._leading:  # a callback failed: stop and hand over rather than hold a lease nobody serves
                try:
                    self._stop_leading(reason="error")
                finally:
                    if self.release_on_cancel:
                        await self._release()
            raise

    # ------------------------------------------------------------------------------------------- loops
    async def _acquire(self) -> None:
        watcher = asyncio.create_task(self._watch(), name=f"lease-watch-{self.name}") if self.watch_lease else None
        try:
            while True:
                self._last_attempt = self._clock.now()
                try:
                    acquired = await self._try_acquire_or_renew(call_timeout=self.request_timeout)
                finally:
                    self._maybe_report_transition()
                if acquired:
                    return
                await self._wait_for_next_attempt(self._clock.now() + self._jittered(self.retry_period))
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _wait_for_next_attempt(self, next_tick: float) -> None:
        """Sleep until `next_tick`, or until the observed lease expires or is released, whichever is first."""
        while True:
            now = self._clock.now()
            deadline = min(next_tick, self._expiry_deadline())
            if deadline <= now:
                return
            self._changed.clear()
            if not await self._sleep_or_change(deadline - now):
                return

    def _expiry_deadline(self) -> float:
        """When the observed record next makes an attempt worthwhile (inf when only the tick applies).

        Only observations newer than our last attempt count, so a failing write never spins.
        """
        rec = self._observed
        if self._observed_spec is None:
            return math.inf
        if not rec.holder_identity or rec.holder_identity == self.identity:
            return self._observed_time if self._observed_time > self._last_attempt else math.inf
        expiry = self._observed_time + rec.lease_duration_seconds + _EXPIRY_MARGIN
        return expiry if expiry > self._last_attempt else math.inf

    async def _sleep_or_change(self, seconds: float) -> bool:
        """Sleep `seconds` on the clock; True if the observed record changed first."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
        return waker.done() and not waker.cancelled()

    async def _renew(self) -> NoReturn:
        # Deadlines count from the START of the last successful write: others saw it no earlier than that.
        last_success = self._last_attempt
        while True:
            await self._clock.sleep(self.retry_period)
            while True:
                remaining = last_success + self.renew_deadline - self._clock.now()
                if remaining <= 0:
                    self._lose("renew_deadline_exceeded")
                started = self._clock.now()
                renewed = False
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self._try_acquire_or_renew(call_timeout=min(self.request_timeout, remaining))
                except TimeoutError:
                    log.warning("leader_election_renew_timeout", lease=self.name, identity=self.identity)
                self._maybe_report_transition()
                if renewed:
                    last_success = started
                    break
                if self._observed.holder_identity not in ("", self.identity):
                    self._lose("lease_taken")
                remaining = last_success + self.renew_deadline - self._clock.now()
                await self._clock.sleep(max(0.0, min(self.retry_period, remaining)))

    # ------------------------------------------------------------------------------------------- the protocol
    def _lease_valid(self, now: float) -> bool:
        return self._observed_time + self._observed.lease_duration_seconds > now

    def _holds_observed(self) -> bool:
        return self._observed.holder_identity == self.identity

    def _observe(self, lease: JSON) -> None:
        """Remember a Lease read from the server; a changed spec resets the local observed time."""
        spec = dict(lease.get("spec") or {})
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed = LeaderElectionRecord.from_spec(spec)
            self._observed_time = self._clock.now()
            self._changed.set()

    def _accept_write(self, lease: JSON) -> None:
        self._lease = lease
        spec = dict(lease.get("spec") or {})
        self._observed_spec = spec
        self._observed = LeaderElectionRecord.from_spec(spec)
        self._observed_time = self._clock.now()

    def _record(self, *, acquire_time: str | None, transitions: int) -> LeaderElectionRecord:
        now = micro_time(self._clock.wall())
        return LeaderElectionRecord(
            holder_identity=self.identity,
            lease_duration_seconds=math.ceil(self.lease_duration),
            acquire_time=acquire_time or now,
            renew_time=now,
            leader_transitions=transitions,
        )

    async def _try_acquire_or_renew(self, *, call_timeout: float) -> bool:
        """One attempt; True when this process holds the Lease afterwards. Never raises ApiError."""
        now = self._clock.now()
        # 1. Fast path: the leader updates its cached Lease optimistically, without reading it first.
        if self._lease is not None and self._holds_observed() and self._lease_valid(now):
            record = self._record(
                acquire_time=self._observed.acquire_time, transitions=self._observed.leader_transitions
            )
            try:
                self._accept_write(await self._put(record, call_timeout=call_timeout))
                return True
            except ApiError as exc:
                log.debug("leader_election_fast_renew_failed", lease=self.name, code=exc.code, error=exc.message)
        # 2. Read the Lease, creating it when missing.
        try:
            lease = await self._client.get(LEASES, self.name, self.namespace, timeout=call_timeout)
        except NotFound:
            record = self._record(acquire_time=None, transitions=0)
            body = {
                "apiVersion": LEASES.api_version,
                "kind": LEASES.kind,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": record.to_spec(),
            }
            try:
                self._accept_write(await self._client.create(LEASES, body, self.namespace, timeout=call_timeout))
            except ApiError as exc:
                level = log.debug if isinstance(exc, AlreadyExists) else log.warning
                level("leader_election_create_failed", lease=self.name, code=exc.code, error=exc.message)
                return False
            return True
        except ApiError as exc:
            log.warning("leader_election_get_failed", lease=self.name, code=exc.code, error=exc.message)
            return False
        # 3. Judge the record by when WE saw it change, never by the holder's clock.
        self._lease = lease
        self._observe(lease)
        old = self._observed
        if old.holder_identity and not self._holds_observed() and self._lease_valid(self._clock.now()):
            log.debug("leader_election_lease_held", lease=self.name, holder=old.holder_identity)
            return False
        # 4. Take or renew it, conditionally on the resourceVersion just read.
        if self._holds_observed():
            record = self._record(acquire_time=old.acquire_time, transitions=old.leader_transitions)
        else:
            record = self._record(acquire_time=None, transitions=old.leader_transitions + 1)
        try:
            self._accept_write(await self._put(record, call_timeout=call_timeout))
        except ApiError as exc:
            level = log.debug if isinstance(exc, Conflict) else log.warning
            level("leader_election_update_failed", lease=self.name, code=exc.code, error=exc.message)
            return False
        return True

    async def _put(self, record: LeaderElectionRecord, *, call_timeout: float) -> JSON:
        if self._lease is None:
            raise AssertionError("the Lease must be read or created before it is updated")
        body = {**self._lease, "spec": {**(self._lease.get("spec") or {}), **record.to_spec()}}
        return await self._client.replace(LEASES, body, timeout=call_timeout)

    async def _release(self) -> bool:
        """Hand the Lease over: holderIdentity="" and leaseDurationSeconds=1, conditionally on our last write."""
        if self._lease is None or not self._holds_observed():
            return True
        now = micro_time(self._clock.wall())
        record = LeaderElectionRecord(
            holder_identity="",
            lease_duration_seconds=1,
            acquire_time=now,
            renew_time=now,
            leader_transitions=self._observed.leader_transitions,
        )
        for attempt in (1, 2):
            try:
                self._accept_write(await self._put(record, call_timeout=self.request_timeout))
                break
            except Conflict:
                # Our cached Lease is stale (e.g. a renewal was cut short by the cancellation and still landed):
                # re-read it once and release it if it still names us.
                if attempt == 2 or not await self._reread_holds():
                    log.info("leader_election_release_skipped", lease=self.name, holder=self._observed.holder_identity)
                    return False
            except ApiError as exc:
                log.warning("leader_election_release_failed", lease=self.name, code=exc.code, error=exc.message)
                return False
        log.info("leader_election_released", lease=self.name, identity=self.identity)
        return True

    async def _reread_holds(self) -> bool:
        try:
            self._lease = await self._client.get(LEASES, self.name, self.namespace, timeout=self.request_timeout)
        except ApiError:
            return False
        self._observe(self._lease)
        return self._holds_observed()

    # ------------------------------------------------------------------------------------------- transitions
    def _start_leading(self) -> None:
        self._leading = True
        self._leading_event.set()
        self._gauge.set(1)
        log.info("leader_election_acquired", lease=self.name, identity=self.identity,
                 transitions=self._observed.leader_transitions)  # fmt: skip
        if self._on_started is not None:
            self._on_started()

    def _stop_leading(self, *, reason: str) -> None:
        self._leading = False
        self._leading_event.clear()
        self._gauge.set(0)
        log.info("leader_election_stopped_leading", lease=self.name, identity=self.identity, reason=reason)
        if self._on_stopped is not None:
            self._on_stopped()

    def _lose(self, reason: str) -> NoReturn:
        log.error("leader_election_lost", lease=self.name, identity=self.identity, reason=reason,
                  holder=self._observed.holder_identity)  # fmt: skip
        self._stop_leading(reason=reason)
        raise LeadershipLost(self.name, self.identity, reason)

    def _maybe_report_transition(self) -> None:
        holder = self._observed.holder_identity
        if holder == self._reported_leader or not holder:
            return
        self._reported_leader = holder
        log.info("leader_election_new_leader", lease=self.name, leader=holder)
        if self._on_new_leader is not None:
            self._on_new_leader(holder)

    def _jittered(self, period: float) -> float:
        return period + self._rng() * self.jitter_factor * period

    # ------------------------------------------------------------------------------------------- watch
    async def _watch(self) -> None:
        """Feed Lease changes into the observed record while waiting (an accelerator, never authoritative)."""
        loop = WatchLoop(
            self._client, LEASES, self.namespace, field_selector=f"metadata.name={self.name}", allow_bookmarks=False,
            backoff=Backoff(initial=self.retry_period, maximum=max(30.0, self.retry_period)), clock=self._clock,
            retryable=lambda exc: not isinstance(exc, Forbidden), on_error=self._watch_failed,
            empty_pause=self.retry_period,
        )  # fmt: skip
        while True:
            try:
                async for event in loop.events():
                    if event.type in ("ADDED", "MODIFIED"):
                        self._observe(event.object)
                        self._maybe_report_transition()
                    elif event.type == "DELETED":
                        self._changed.set()
            except Forbidden:
                log.info("leader_election_watch_forbidden", lease=self.name)
                return
            except Exception as exc:  # an accelerator must never break the election: log and keep polling
                log.warning("leader_election_watch_error", lease=self.name, error=repr(exc))
                await self._clock.sleep(self.retry_period)

    def _watch_failed(self, exc: ApiError, delay: float) -> None:
        log.debug(
            "leader_election_watch_failed", lease=self.name, code=exc.code, error=exc.message, retry_in=round(delay, 2)
        )
