"""The controller workqueue: client-go's util/workqueue (Type, delayingType, rateLimitingType) in asyncio.

Three layers, each a subclass of the one before:
- `Queue`: a FIFO of keys with a dirty set and a processing set. A key is in the FIFO at most once, a key is
  never handed to two workers at once, and a key added while it is being processed is handed out once more
  after `done`. This is what lets N workers reconcile without locks.
- `DelayingQueue`: `add_after(key, delay)`; waiting keys sit in a heap ordered by ready time and a
  background task moves them into the FIFO when due, sleeping on the injected clock.
- `RateLimitingQueue`: `add_rate_limited(key)` = `add_after(key, limiter.when(key))`, plus `forget` and
  `num_requeues` of the limiter.

Invariants (the state is `fifo`, `dirty`, `processing`, and for the delaying queue `waiting`):
- `fifo` has no duplicates and `set(fifo) == dirty - processing` (outside of a step: `done` of a dirty key
  moves it straight into `fifo`).
- `get` moves a key from `fifo` and `dirty` into `processing`; only `done` takes it out of `processing`.
- After `shutdown`/`shutdown_with_drain`, `add` and `add_after` are ignored and waiting keys are dropped;
  `get` still hands out what is in `fifo` (including keys re-queued by `done`) and raises `ShutDown` once
  `fifo` is empty.
- A key waits in the delaying heap at most once: adding it again keeps the earlier ready time.
- Metrics (when given) follow client-go: `depth` counts dirty keys (incremented by a new `add`, decremented
  by `get`), `adds_total` counts accepted adds, `queue_duration` is first add -> `get`, `work_duration` is
  `get` -> `done`, `retries_total` counts `add_after` calls (so every `add_rate_limited`), and
  `unfinished_work_seconds` / `longest_running_processor_seconds` are computed from the clock at scrape time
  until the queue shuts down, when they freeze (client-go stops its update loop then).
- Single event loop, no threads. `add`, `done`, `add_after` are synchronous and never block.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from substratus_controller.runtime.clock import Clock, RealClock
from substratus_controller.runtime.metrics import RuntimeMetrics
from substratus_controller.runtime.ratelimit import RateLimiter, default_controller_rate_limiter

__all__ = ["DelayingQueue", "Queue", "RateLimitingQueue", "ShutDown"]

T = TypeVar("T", bound=Hashable)


class ShutDown(Exception):
    """Raised by `get()` when the queue is shut down and has nothing left to hand out."""


class _NoMetrics:
    """Metrics sink of a queue without metrics."""

    def add(self, item: Hashable) -> None:
        return None

    def get(self, item: Hashable) -> None:
        return None

    def done(self, item: Hashable) -> None:
        return None

    def retry(self) -> None:
        return None

    def freeze(self) -> None:
        return None


class _QueueMetrics(_NoMetrics):
    """client-go's defaultQueueMetrics for one queue name, on the prometheus metrics of `RuntimeMetrics`."""

    def __init__(self, metrics: RuntimeMetrics, *, name: str, clock: Clock) -> None:
        self._clock = clock
        self._depth = metrics.workqueue_depth.labels(name)
        self._adds = metrics.workqueue_adds.labels(name)
        self._latency = metrics.workqueue_queue_duration.labels(name)
        self._work = metrics.workqueue_work_duration.labels(name)
        self._retries = metrics.workqueue_retries.labels(name)
        self._unfinished = metrics.workqueue_unfinished_work.labels(name)
        self._longest = metrics.workqueue_longest_running_processor.labels(name)
        self._add_times: dict[Hashable, float] = {}
        self._start_times: dict[Hashable, float] = {}
        self._unfinished.set_function(self._unfinished_seconds)
        self._longest.set_function(self._longest_seconds)

    def add(self, item: Hashable) -> None:
        self._adds.inc()
        self._depth.inc()
        self._add_times.setdefault(item, self._clock.now())

    def get(self, item: Hashable) -> None:
        now = self._clock.now()
        self._depth.dec()
        self._start_times[item] = now
        added = self._add_times.pop(item, None)
        if added is not None:
            self._latency.observe(now - added)

    def done(self, item: Hashable) -> None:
        started = self._start_times.pop(item, None)
        if started is not None:
            self._work.observe(self._clock.now() - started)

    def retry(self) -> None:
        self._retries.inc()

    def freeze(self) -> None:
        # Stop computing at scrape time (and stop the registry from referencing this object's items).
        unfinished, longest = self._unfinished_seconds(), self._longest_seconds()
        self._unfinished.set_function(lambda: unfinished)
        self._longest.set_function(lambda: longest)

    def _unfinished_seconds(self) -> float:
        now = self._clock.now()
        return sum(now - started for started in self._start_times.values())

    def _longest_seconds(self) -> float:
        now = self._clock.now()
        return max((now - started for started in self._start_times.values()), default=0.0)


class Queue(Generic[T]):
    """client-go's workqueue.Type: a deduplicating FIFO of hashable keys with at-most-one-worker-per-key.

    Contract:
    - `add(item)`: ignored after shutdown or when the item is already dirty (queued or re-added); otherwise
      the item becomes dirty and, unless it is being processed, is appended to the FIFO.
    - `await get()`: waits for an item, marks it processing and returns it; raises `ShutDown` when the queue
      is shut down and the FIFO is empty. Cancelling a waiting `get` loses no item.
    - `done(item)`: the worker finished the item; if it was re-added meanwhile, it goes back into the FIFO.
      Every item returned by `get` must be passed to `done` exactly once.
    - `shutdown()`: stop accepting items, wake all waiting `get`s (and any `shutdown_with_drain`).
    - `await shutdown_with_drain()`: like `shutdown`, then wait until no item is being processed (or until a
      plain `shutdown` forces it to return).
    - `len()` / `len(q)`: number of items in the FIFO (not counting items being processed).
    Metrics are recorded when `metrics` is given; they are labelled `{name}`, so `name` is then required.
    """

    def __init__(self, *, name: str = "", clock: Clock | None = None, metrics: RuntimeMetrics | None = None) -> None:
        if metrics is not None and not name:
            raise ValueError("a queue with metrics needs a name")
        self.name = name
        self._clock: Clock = clock if clock is not None else RealClock()
        self._metrics: _NoMetrics = (
            _QueueMetrics(metrics, name=name, clock=self._clock) if metrics is not None else _NoMetrics()
        )
        self._fifo: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._drain = False
        self._drain_signal = asyncio.Event()

    def add(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._metrics.add(item)
        self._dirty.add(item)
        if item in self._processing:
            return
        self._fifo.append(item)
        self._wake_getter()

    async def get(self) -> T:
        while not self._fifo:
            if self._shutting_down:
                raise ShutDown
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(waiter)
                if self._fifo and not waiter.cancelled():
                    # We were woken for an item but will not take it: pass the wake-up on.
                    self._wake_getter()
                raise
        item = self._fifo.popleft()
        self._metrics.get(item)
        self._processing.add(item)
        self._dirty.discard(item)
        return item

    def done(self, item: T) -> None:
        self._metrics.done(item)
        self._processing.discard(item)
        if item in self._dirty:
            self._fifo.append(item)
            self._wake_getter()
        elif not self._processing:
            self._drain_signal.set()

    def len(self) -> int:
        """Number of items waiting in the FIFO."""
        return len(self._fifo)

    def __len__(self) -> int:
        return len(self._fifo)

    def shutdown(self) -> None:
        self._drain = False
        self._begin_shutdown()
        self._drain_signal.set()

    async def shutdown_with_drain(self) -> None:
        self._drain = True
        self._begin_shutdown()
        while self._processing and self._drain:
            self._drain_signal.clear()
            await self._drain_signal.wait()

    def shutting_down(self) -> bool:
        return self._shutting_down

    def _begin_shutdown(self) -> None:
        if not self._shutting_down:
            self._shutting_down = True
            self._metrics.freeze()
            self._on_shutdown()
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _on_shutdown(self) -> None:
        """Hook for subclasses: called once, when shutdown begins."""

    def _wake_getter(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


@dataclass(order=True, slots=True)
class _Waiting(Generic[T]):
    ready_at: float
    seq: int
    item: T = field(compare=False)


class DelayingQueue(Queue[T]):
    """client-go's delayingType: a `Queue` plus `add_after(item, delay)`.

    Contract:
    - `add_after(item, delay)`: ignored after shutdown; counts a retry in the metrics (as client-go does);
      `delay <= 0` is a plain `add`; otherwise the item is added `delay` seconds later on the queue's clock.
      An item waits at most once: adding it again while it waits keeps the earlier of the two ready times.
      Items that become due at the same time are added in ready-time order, then in `add_after` order.
    - A background task does the waiting. It starts on the first delayed `add_after` (or `start()`), must be
      in the event loop that uses the queue, and stops at shutdown, dropping the items still waiting.
    - If that task crashes, the queue shuts down and `get` raises `RuntimeError` (from the crash) instead of
      `ShutDown` once the FIFO is empty, so the workers fail loudly rather than exit quietly.
    """

    def __init__(self, *, name: str = "", clock: Clock | None = None, metrics: RuntimeMetrics | None = None) -> None:
        super().__init__(name=name, clock=clock, metrics=metrics)
        self._heap: list[_Waiting[T]] = []
        self._waiting: dict[T, _Waiting[T]] = {}
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._next_wake: float | None = None  # the ready time the loop sleeps for, None when not sleeping
        self._task: asyncio.Task[None] | None = None
        self._loop_error: BaseException | None = None

    def start(self) -> None:
        """Start the waiting task now (it otherwise starts on the first delayed `add_after`)."""
        if self._task is None and not self._shutting_down:
            self._task = asyncio.get_running_loop().create_task(
                self._waiting_loop(), name=f"workqueue-delay:{self.name}"
            )
            self._task.add_done_callback(self._on_loop_exit)

    def add_after(self, item: T, delay: float) -> None:
        if self._shutting_down:
            return
        self._metrics.retry()
        if delay <= 0:
            self.add(item)
            return
        ready_at = self._clock.now() + delay
        existing = self._waiting.get(item)
        if existing is not None and existing.ready_at <= ready_at:
            return
        # A moved item leaves its old (later) heap entry behind; it is skipped as stale when it surfaces.
        entry = _Waiting(ready_at, next(self._seq), item)
        self._waiting[item] = entry
        heapq.heappush(self._heap, entry)
        if self._next_wake is None or ready_at < self._next_wake:
            self._wakeup.set()
        self.start()

    def num_waiting(self) -> int:
        """Number of distinct items waiting for their ready time."""
        return len(self._waiting)

    async def get(self) -> T:
        try:
            return await super().get()
        except ShutDown:
            if self._loop_error is not None:
                raise RuntimeError(f"workqueue {self.name!r}: the delaying task crashed") from self._loop_error
            raise

    def _on_shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._heap.clear()
        self._waiting.clear()
        self._wakeup.set()

    def _on_loop_exit(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._loop_error = error
            self.shutdown()

    async def _waiting_loop(self) -> None:
        while not self._shutting_down:
            self._wakeup.clear()
            self._add_ready(self._clock.now())
            while self._heap and self._waiting.get(self._heap[0].item) is not self._heap[0]:
                heapq.heappop(self._heap)  # stale entry of a moved item
            if not self._heap:
                await self._wakeup.wait()
                continue
            target = self._heap[0].ready_at
            self._next_wake = target
            try:
                due = await self._sleep_or_wakeup(target)
            finally:
                self._next_wake = None
            if due:
                # The clock said the deadline passed: what was due at `target` is due now, whatever float
                # rounding `now + (target - now)` did.
                self._add_ready(max(self._clock.now(), target))

    def _add_ready(self, now: float) -> None:
        while self._heap and self._heap[0].ready_at <= now:
            entry = heapq.heappop(self._heap)
            if self._waiting.get(entry.item) is entry:
                del self._waiting[entry.item]
                self.add(entry.item)

    async def _sleep_until(self, deadline: float) -> None:
        # The remaining time is read when this task starts, not when it is created: time may move in between
        # (a fake clock stepped by a test, or a busy loop), and the deadline is absolute.
        await self._clock.sleep(deadline - self._clock.now())

    async def _sleep_or_wakeup(self, deadline: float) -> bool:
        """Sleep on the clock until `deadline` unless woken first; True when the deadline passed."""
        sleeper = asyncio.ensure_future(self._sleep_until(deadline))
        waker = asyncio.ensure_future(self._wakeup.wait())
        try:
            finished, _ = await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        if sleeper in finished:
            sleeper.result()  # re-raise a failing clock
            return True
        return False


class RateLimitingQueue(DelayingQueue[T]):
    """client-go's rateLimitingType: a `DelayingQueue` whose retries are paced by a `RateLimiter`.

    Contract:
    - `add_rate_limited(item)`: `add_after(item, rate_limiter.when(item))` (which records a failure).
    - `forget(item)`: the item succeeded; the limiter drops its history. Call it after every success, or the
      next failure backs off from where the last one left.
    - `num_requeues(item)`: the limiter's failure count for the item.
    The default limiter is `default_controller_rate_limiter` on the queue's clock.
    """

    def __init__(
        self,
        *,
        rate_limiter: RateLimiter | None = None,
        name: str = "",
        clock: Clock | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock, metrics=metrics)
        self.rate_limiter: RateLimiter = (
            rate_limiter if rate_limiter is not None else default_controller_rate_limiter(self._clock)
        )

    def add_rate_limited(self, item: T) -> None:
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)
