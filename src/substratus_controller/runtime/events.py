"""Kubernetes Events about the objects a controller manages: rate limited, aggregated, redacted, never blocking.

`EventRecorder.event(obj, type=, reason=, message=)` is synchronous, never blocks and never raises: it
validates, redacts and rate-limits the event and puts it on a bounded in-memory queue. `run()` (a background
task) sends the queue to the API server with a few concurrent workers.

Semantics (client-go's `tools/record` EventCorrelator and `tools/events` series, simplified):
- Spam filter: one token bucket per (source, involved object) with burst 25, refilled with 1 token per
  5 minutes. Every occurrence takes a token, repeats included; events without one are dropped
  (`stats.dropped_rate_limited`, logged at debug).
- Aggregation: occurrences with the same object, type, reason, action and message whose previous occurrence
  was at most 10 minutes earlier update the existing Event instead of creating another one: a merge PATCH of
  `series.count` / `series.lastObservedTime` (events.k8s.io/v1) or `count` / `lastTimestamp` (core/v1).
  Occurrences still queued coalesce in place (one write for many). A PATCH answered 404 (the Event expired)
  creates a new Event.
- API: events.k8s.io/v1 (regarding, note, reportingController, reportingInstance, eventTime as MicroTime),
  falling back to core/v1 (involvedObject, message, source.component, first/lastTimestamp, count) when the
  events.k8s.io/v1 group/version is not served. Discovery runs once, on the first send, and is remembered.
  Events live in the object's namespace; those about cluster-scoped objects in `kube-system`
  (events.k8s.io/v1) or `default` (core/v1), see `event_namespace`.
- Messages go through `redact()` (signed-URL query strings, signature and token parameters, bearer tokens)
  and are truncated to 1 KiB (the API's limit for `note`).
- Queue bound: at most `queue_size` distinct pending events; when full the NEWEST (incoming) event is
  dropped (`stats.dropped_queue_full`), as client-go's broadcaster does. Repeats of a queued event never
  take room.
- Failures: 5xx, 429, timeouts and connection errors are retried with exponential backoff up to `max_tries`
  times; other API errors drop the event with one warning log line. Events of one aggregation key are sent
  one at a time, in order.

Invariants: `event()` does no I/O and raises nothing; no unredacted message leaves this module (not in an
Event, not in a log line); every API call has a timeout. Single event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NoReturn

import structlog

from substratus_controller.jsontypes import JSON

from .client import Client
from .clock import Clock, RealClock
from .errors import AlreadyExists, ApiError, NotFound, ServerError
from .redact import redact
from .resource import Resource
from .resources import EVENTS, EVENTS_CORE
from .times import micro_time, rfc3339

__all__ = [
    "EventRecorder",
    "RecorderStats",
    "SpamFilter",
    "TokenBucket",
    "aggregation_key",
    "build_core_event",
    "build_event",
    "event_namespace",
    "object_reference",
    "redact",
    "spam_key",
    "truncate_note",
]

EventType = Literal["Normal", "Warning"]
log = structlog.get_logger("substratus.runtime.events")

NOTE_LIMIT = 1024  # bytes; the API rejects longer notes
FIELD_LIMIT = 128  # reason, action, reportingInstance
DEFAULT_BURST = 25
DEFAULT_REFILL_INTERVAL = 300.0
DEFAULT_AGGREGATION_WINDOW = 600.0
CACHE_SIZE = 4096  # client-go's maxLruCacheEntries


# ------------------------------------------------------------------------------------------------- notes
def truncate_note(text: str, limit: int = NOTE_LIMIT) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (ending in "..." when cut, never splitting a character)."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "..."


# ------------------------------------------------------------------------------------------------- rate limiting
class TokenBucket:
    """A passive token bucket (client-go's flowcontrol token bucket without waiting).

    Starts full with `burst` tokens and gains one token every `refill_interval` seconds, up to `burst`.
    `try_accept(now)` takes a token if there is one. `now` is monotonic seconds and must not go backwards.
    """

    __slots__ = ("_last", "_tokens", "burst", "refill_interval")

    def __init__(self, *, burst: int, refill_interval: float, now: float) -> None:
        if burst < 1 or refill_interval <= 0:
            raise ValueError("burst must be >= 1 and refill_interval > 0")
        self.burst = burst
        self.refill_interval = refill_interval
        self._tokens = float(burst)
        self._last = now

    def tokens(self, now: float) -> float:
        """The tokens available at `now` (without taking one)."""
        return min(float(self.burst), self._tokens + max(0.0, now - self._last) / self.refill_interval)

    def try_accept(self, now: float) -> bool:
        self._tokens = self.tokens(now)
        self._last = max(self._last, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class SpamFilter:
    """One `TokenBucket` per key (client-go's EventSourceObjectSpamFilter), the most recent `max_keys` kept."""

    def __init__(
        self,
        *,
        now: Callable[[], float],
        burst: int = DEFAULT_BURST,
        refill_interval: float = DEFAULT_REFILL_INTERVAL,
        max_keys: int = CACHE_SIZE,
    ) -> None:
        self._now = now
        self.burst = burst
        self.refill_interval = refill_interval
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def allow(self, key: Hashable) -> bool:
        """Whether an event for `key` may be sent now (takes a token when it may)."""
        now = self._now()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(burst=self.burst, refill_interval=self.refill_interval, now=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.try_accept(now)


# ------------------------------------------------------------------------------------------------- pure parts
def object_reference(obj: JSON) -> JSON:
    """The ObjectReference of `obj` (apiVersion, kind, name, and namespace, uid, resourceVersion if set)."""
    meta = obj.get("metadata") or {}
    api_version, kind, name = obj.get("apiVersion"), obj.get("kind"), meta.get("name")
    if not (api_version and kind and name):
        raise ValueError("an event needs an object with apiVersion, kind and metadata.name")
    ref: JSON = {"apiVersion": api_version, "kind": kind, "name": name}
    for key in ("namespace", "uid", "resourceVersion"):
        if meta.get(key):
            ref[key] = meta[key]
    return ref


def spam_key(component: str, instance: str, ref: JSON) -> tuple[str, ...]:
    """The spam filter's key: the source and the involved object (not the reason or message)."""
    return (component, instance, *(str(ref.get(k, "")) for k in ("apiVersion", "kind", "namespace", "name", "uid")))


def aggregation_key(ref: JSON, *, type: str, reason: str, action: str, note: str) -> tuple[str, ...]:
    """The key under which identical events aggregate: the object, type, reason, action and message."""
    obj = tuple(str(ref.get(k, "")) for k in ("apiVersion", "kind", "namespace", "name", "uid"))
    return (*obj, type, reason, action, note)


def event_namespace(ref: JSON, *, core: bool) -> str:
    """Where an Event about `ref` lives: the object's namespace; for cluster-scoped objects `default` (core/v1)
    or `kube-system` (events.k8s.io/v1, the only namespace API servers before 1.22 accept; later ones accept
    both)."""
    return str(ref.get("namespace") or ("default" if core else "kube-system"))


def build_event(
    *,
    name: str,
    namespace: str,
    ref: JSON,
    type: str,
    reason: str,
    action: str,
    note: str,
    component: str,
    instance: str,
    event_time: datetime,
    count: int = 1,
    last_observed: datetime | None = None,
) -> JSON:
    """An events.k8s.io/v1 Event; with `series` when it stands for `count` >= 2 occurrences."""
    body: JSON = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": micro_time(event_time),
        "reportingController": component,
        "reportingInstance": instance,
        "action": action,
        "reason": reason,
        "regarding": ref,
        "note": note,
        "type": type,
    }
    if count > 1:
        body["series"] = {"count": count, "lastObservedTime": micro_time(last_observed or event_time)}
    return body


def build_core_event(
    *,
    name: str,
    namespace: str,
    ref: JSON,
    type: str,
    reason: str,
    action: str,
    note: str,
    component: str,
    instance: str,
    first_timestamp: datetime,
    last_timestamp: datetime,
    count: int = 1,
) -> JSON:
    """A core/v1 Event (the legacy shape: involvedObject, source, first/lastTimestamp, count)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": ref,
        "reason": reason,
        "message": note,
        "type": type,
        "action": action,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": instance,
        "firstTimestamp": rfc3339(first_timestamp),
        "lastTimestamp": rfc3339(last_timestamp),
        "count": count,
    }


_QUALIFIED_NAME = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


# ------------------------------------------------------------------------------------------------- recorder
@dataclass
class RecorderStats:
    """Counters of what happened to recorded events (for tests, debugging and logs)."""

    recorded: int = 0  # accepted by event(), repeats included
    created: int = 0  # Events created
    patched: int = 0  # Events updated with a new count
    dropped_rate_limited: int = 0
    dropped_queue_full: int = 0
    dropped_invalid: int = 0  # bad arguments (no object reference, unknown type, empty reason)
    dropped_failed: int = 0  # refused by the API server or retries exhausted


@dataclass(slots=True)
class _Pending:
    ref: JSON
    namespace: str
    type: str
    reason: str
    action: str
    note: str
    count: int
    first_wall: datetime
    last_wall: datetime
    first_mono: float
    last_mono: float


@dataclass(slots=True)
class _Sent:
    resource: Resource
    core: bool
    namespace: str
    name: str
    count: int
    last_mono: float


class EventRecorder:
    """Records Events for objects; see the module docstring for the semantics.

    Contract:
    - `event(obj, type=, reason=, message=, action=)` never blocks or raises; `obj` needs apiVersion, kind
      and metadata.name (as informer objects have). `action` defaults to `reason` (events.k8s.io requires one).
    - `await run()` sends until cancelled (start it as a supervised task; it raises only on bugs).
    - `await flush(timeout)` returns True once everything recorded so far was sent or dropped.
    - `api` forces "events.k8s.io/v1" or "v1" instead of discovering ("auto"); `events_resource` /
      `core_resource` say where those live (tests point `events_resource` at a version that is not served).
    - `stats` counts what happened; nothing else is exposed about individual events.
    """

    def __init__(
        self,
        client: Client,
        *,
        component: str,
        instance: str | None = None,
        api: Literal["auto", "events.k8s.io/v1", "v1"] = "auto",
        events_resource: Resource = EVENTS,
        core_resource: Resource = EVENTS_CORE,
        queue_size: int = 1000,
        workers: int = 4,
        burst: int = DEFAULT_BURST,
        refill_interval: float = DEFAULT_REFILL_INTERVAL,
        aggregation_window: float = DEFAULT_AGGREGATION_WINDOW,
        max_tries: int = 12,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 10.0,
        request_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if not _QUALIFIED_NAME.match(component):
            raise ValueError(f"component {component!r} is not a qualified name (e.g. example.com/my-controller)")
        if queue_size < 1 or workers < 1 or max_tries < 1:
            raise ValueError("queue_size, workers and max_tries must be at least 1")
        self._client = client
        self.component = component
        self.instance = (instance or socket.gethostname())[:FIELD_LIMIT]
        self.api = api
        self._events_resource = events_resource
        self._core_resource = core_resource
        self.queue_size = queue_size
        self.workers = workers
        self.aggregation_window = aggregation_window
        self.max_tries = max_tries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self.request_timeout = request_timeout
        self._clock: Clock = clock or RealClock()
        self._spam = SpamFilter(now=self._clock.now, burst=burst, refill_interval=refill_interval)
        self.stats = RecorderStats()
        self._pending: OrderedDict[tuple[str, ...], _Pending] = OrderedDict()
        self._inflight: set[tuple[str, ...]] = set()
        self._sent: OrderedDict[tuple[str, ...], _Sent] = OrderedDict()
        self._resolved: tuple[Resource, bool] | None = None
        self._resolve_lock = asyncio.Lock()
        self._work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_ns = 0

    # ------------------------------------------------------------------------------------------- recording
    def event(self, obj: JSON, *, type: EventType, reason: str, message: str, action: str = "") -> None:
        """Record an event about `obj` (queued; sent by `run()`). Never blocks, never raises."""
        try:
            self._record(obj, type=type, reason=reason, message=message, action=action)
        except Exception as exc:
            self.stats.dropped_invalid += 1
            log.warning("event_dropped_invalid", reason=str(reason)[:FIELD_LIMIT], error=redact(str(exc)))

    def pending(self) -> int:
        """How many distinct events wait to be sent (in-flight ones excluded)."""
        return len(self._pending)

    def _record(self, obj: JSON, *, type: str, reason: str, message: str, action: str) -> None:
        if type not in ("Normal", "Warning"):
            raise ValueError(f"event type must be Normal or Warning, not {type!r}")
        if not reason:
            raise ValueError("an event needs a reason")
        ref = object_reference(obj)
        reason = reason[:FIELD_LIMIT]
        action = (action or reason)[:FIELD_LIMIT]
        note = truncate_note(redact(message))
        if not self._spam.allow(spam_key(self.component, self.instance, ref)):
            self.stats.dropped_rate_limited += 1
            log.debug("event_dropped_rate_limited", kind=ref["kind"], namespace=ref.get("namespace", ""),
                      name=ref["name"], reason=reason)  # fmt: skip
            return
        key = aggregation_key(ref, type=type, reason=reason, action=action, note=note)
        mono, wall = self._clock.now(), self._clock.wall()
        queued = self._pending.get(key)
        if queued is not None:
            queued.count += 1
            queued.last_wall, queued.last_mono = wall, mono
        elif len(self._pending) >= self.queue_size:
            self.stats.dropped_queue_full += 1
            log.debug("event_dropped_queue_full", kind=ref["kind"], namespace=ref.get("namespace", ""),
                      name=ref["name"], reason=reason, queue_size=self.queue_size)  # fmt: skip
            return
        else:
            self._pending[key] = _Pending(
                ref=ref, namespace=ref.get("namespace", ""), type=type, reason=reason, action=action,
                note=note, count=1, first_wall=wall, last_wall=wall, first_mono=mono, last_mono=mono,
            )  # fmt: skip
        self.stats.recorded += 1
        self._idle.clear()
        self._work.set()

    # ------------------------------------------------------------------------------------------- sending
    async def run(self) -> NoReturn:
        """Send queued events with `workers` concurrent workers, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for i in range(self.workers):
                group.create_task(self._worker(), name=f"event-recorder-{i}")
        raise AssertionError("event workers never return")

    async def flush(self, timeout: float) -> bool:
        """Wait until every event recorded so far was sent or dropped; False if `timeout` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def _take(self) -> tuple[tuple[str, ...], _Pending] | None:
        for key in self._pending:
            if key not in self._inflight:
                item = self._pending.pop(key)
                self._inflight.add(key)
                return key, item
        return None

    async def _worker(self) -> NoReturn:
        while True:
            taken = self._take()
            if taken is None:
                self._work.clear()
                await self._work.wait()
                continue
            key, item = taken
            try:
                await self._deliver(key, item)
            finally:
                self._inflight.discard(key)
                self._work.set()
                if not self._pending and not self._inflight:
                    self._idle.set()

    async def _deliver(self, key: tuple[str, ...], item: _Pending) -> None:
        where = {"kind": item.ref["kind"], "namespace": item.namespace, "name": item.ref["name"], "reason": item.reason}
        for attempt in range(1, self.max_tries + 1):
            try:
                await self._send(key, item)
                return
            except (ServerError, AlreadyExists) as exc:
                if attempt == self.max_tries:
                    self.stats.dropped_failed += 1
                    log.warning("event_send_gave_up", **where, tries=attempt, code=exc.code, error=exc.message)
                    return
                delay = min(self.retry_max_delay, self.retry_initial_delay * 2 ** (attempt - 1))
                log.debug("event_send_retry", **where, attempt=attempt, delay=delay, code=exc.code)
                await self._clock.sleep(delay)
            except ApiError as exc:
                self.stats.dropped_failed += 1
                log.warning("event_send_failed", **where, code=exc.code, error=exc.message)
                return

    async def _send(self, key: tuple[str, ...], item: _Pending) -> None:
        prev = self._sent.get(key)
        if prev is not None and item.first_mono - prev.last_mono <= self.aggregation_window:
            count = prev.count + item.count
            if prev.core:
                patch: JSON = {"count": count, "lastTimestamp": rfc3339(item.last_wall)}
            else:
                patch = {"series": {"count": count, "lastObservedTime": micro_time(item.last_wall)}}
            try:
                await self._client.patch(prev.resource, prev.name, patch, prev.namespace, timeout=self.request_timeout)
            except NotFound:
                self._sent.pop(key, None)  # expired or deleted: start a new Event below
            else:
                prev.count, prev.last_mono = count, item.last_mono
                self._sent.move_to_end(key)
                self.stats.patched += 1
                return
        resource, core = await self._events_api()
        namespace = event_namespace(item.ref, core=core)
        name = self._event_name(item.ref["name"])
        common: JSON = {
            "name": name, "namespace": namespace, "ref": item.ref, "type": item.type, "reason": item.reason,
            "action": item.action, "note": item.note, "component": self.component, "instance": self.instance,
            "count": item.count,
        }  # fmt: skip
        if core:
            body = build_core_event(**common, first_timestamp=item.first_wall, last_timestamp=item.last_wall)
        else:
            body = build_event(**common, event_time=item.first_wall, last_observed=item.last_wall)
        created = await self._client.create(resource, body, namespace, timeout=self.request_timeout)
        self._sent[key] = _Sent(
            resource=resource, core=core, namespace=namespace,
            name=str(created.get("metadata", {}).get("name", name)), count=item.count, last_mono=item.last_mono,
        )  # fmt: skip
        if len(self._sent) > CACHE_SIZE:
            self._sent.popitem(last=False)
        self.stats.created += 1

    def _event_name(self, object_name: str) -> str:
        """`<object name>.<hex nanoseconds>` like client-go, strictly increasing so names never collide."""
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        suffix = f".{self._last_ns:x}"
        return object_name[: 253 - len(suffix)] + suffix

    async def _events_api(self) -> tuple[Resource, bool]:
        """Where Events go: (resource, is_core). Decided once; discovery errors other than 404 propagate."""
        if self._resolved is not None:
            return self._resolved
        async with self._resolve_lock:
            if self._resolved is None:
                self._resolved = await self._discover()
            return self._resolved

    async def _discover(self) -> tuple[Resource, bool]:
        if self.api == "v1":
            return self._core_resource, True
        res = self._events_resource
        if self.api == "events.k8s.io/v1":
            return res, False
        path = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        try:
            doc = await self._client.request("GET", path, timeout=self.request_timeout)
            served = isinstance(doc, dict) and any(r.get("name") == res.plural for r in doc.get("resources") or [])
        except NotFound:
            served = False
        if served:
            log.info("events_api_selected", api=res.api_version)
            return res, False
        log.info("events_api_fallback", unavailable=res.api_version, api=self._core_resource.api_version)
        return self._core_resource, True
