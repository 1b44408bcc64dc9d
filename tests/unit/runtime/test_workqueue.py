"""The workqueue, ported from client-go's util/workqueue tests (queue_test.go, delaying_queue_test.go,
rate_limiting_queue_test.go, metrics_test.go) onto asyncio and a fake clock.

Go's `wait.Poll(1ms, ...)` becomes `eventually(...)`, which only yields to the event loop; Go's
"waitForWaitingQueueToFill" becomes waiting until the delaying task sleeps on the fake clock for the expected
deadline. Nothing here sleeps in real time.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any, Protocol, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from substratus_controller.runtime.clock import FakeClock
from substratus_controller.runtime.metrics import RuntimeMetrics
from substratus_controller.runtime.ratelimit import ItemExponentialFailureRateLimiter
from substratus_controller.runtime.workqueue import DelayingQueue, Queue, RateLimitingQueue, ShutDown

Q = TypeVar("Q", bound=Queue[Any])
MS = 0.001


async def settle(rounds: int = 50) -> None:
    """Let every ready task run until the loop is quiet (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def eventually(condition: Callable[[], bool], *, rounds: int = 10_000) -> None:
    """Yield to the loop until `condition()` holds (Go's wait.Poll, without real time)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def deadline_is(clock: FakeClock, expected: float) -> Callable[[], bool]:
    def check() -> bool:
        deadline = clock.next_deadline()
        return deadline is not None and abs(deadline - expected) < 1e-9

    return check


class Cleanup(Protocol):
    def __call__(self, queue: Q, /) -> Q: ...


@pytest.fixture
async def cleanup() -> AsyncIterator[Cleanup]:
    """Register queues to shut down after the test, so no delaying task outlives it (the loop is shared)."""
    queues: list[Queue[Any]] = []

    def register(queue: Q) -> Q:
        queues.append(queue)
        return queue

    yield register
    for queue in queues:
        queue.shutdown()
    await settle()


async def shut_down(queue: Queue[Any], *, drain: bool) -> None:
    if drain:
        await asyncio.wait_for(queue.shutdown_with_drain(), 5)
    else:
        queue.shutdown()


# ---------------------------------------------------------------------------------------------- queue_test.go


@pytest.mark.parametrize("drain", [False, True], ids=["shutdown", "shutdown_with_drain"])
async def test_basic(drain: bool) -> None:
    """TestBasic: 50 producers x 50 adds, 10 consumers; plus: no key is ever processed twice at once."""
    q: Queue[Hashable] = Queue()
    in_flight: set[Hashable] = set()
    processed: Counter[Hashable] = Counter()

    async def producer(i: int) -> None:
        for _ in range(50):
            q.add(i)
            await asyncio.sleep(0)

    async def consumer() -> None:
        while True:
            try:
                item = await q.get()
            except ShutDown:
                return
            assert item != "added after shutdown!", "got an item added after shutdown"
            assert item not in in_flight, f"{item!r} handed to two workers at once"
            in_flight.add(item)
            for _ in range(3):
                await asyncio.sleep(0)
            in_flight.discard(item)
            processed[item] += 1
            q.done(item)

    consumers = [asyncio.create_task(consumer()) for _ in range(10)]
    await asyncio.gather(*(producer(i) for i in range(50)))
    await shut_down(q, drain=drain)
    q.add("added after shutdown!")
    await asyncio.wait_for(asyncio.gather(*consumers), 5)

    assert len(q) == 0
    assert set(processed) == set(range(50)), "every added key is processed at least once"
    assert sum(processed.values()) < 50 * 50, "adds of a queued key are deduplicated"


@pytest.mark.parametrize("drain", [False, True], ids=["shutdown", "shutdown_with_drain"])
async def test_add_while_processing(drain: bool) -> None:
    """TestAddWhileProcessing: every worker re-adds every key it sees up to twice (dirty while processing)."""
    q: Queue[int] = Queue()
    in_flight: set[int] = set()
    seen: set[int] = set()

    async def consumer() -> None:
        counters: Counter[int] = Counter()
        while True:
            try:
                item = await q.get()
            except ShutDown:
                return
            assert item not in in_flight, f"{item!r} handed to two workers at once"
            in_flight.add(item)
            seen.add(item)
            counters[item] += 1
            if counters[item] < 2:
                q.add(item)
            await asyncio.sleep(0)
            in_flight.discard(item)
            q.done(item)

    consumers = [asyncio.create_task(consumer()) for _ in range(10)]
    for i in range(50):
        q.add(i)
    await settle(5)
    await shut_down(q, drain=drain)
    await asyncio.wait_for(asyncio.gather(*consumers), 5)

    assert len(q) == 0
    assert seen == set(range(50))


async def test_len() -> None:
    """TestLen."""
    q: Queue[str] = Queue()
    q.add("foo")
    assert q.len() == 1
    q.add("bar")
    assert q.len() == 2
    q.add("foo")  # should not increase the queue length
    assert q.len() == 2
    assert len(q) == 2


async def test_fifo_order() -> None:
    q: Queue[str] = Queue()
    for item in ("c", "a", "b", "a"):
        q.add(item)
    got = [await q.get() for _ in range(3)]
    assert got == ["c", "a", "b"]


async def test_reinsert() -> None:
    """TestReinsert: an item added back while processing is queued again once it is done."""
    q: Queue[str] = Queue()
    q.add("foo")

    item = await q.get()
    assert item == "foo"
    q.add(item)  # add it back while processing
    assert len(q) == 0, "a key being processed is not queued a second time"

    q.done(item)
    assert len(q) == 1
    item = await asyncio.wait_for(q.get(), 1)
    assert item == "foo"

    q.done(item)
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue() -> None:
    q: Queue[str] = Queue()
    q.add("foo")
    q.done(await q.get())
    assert len(q) == 0
    waiter = asyncio.create_task(q.get())
    await settle()
    assert not waiter.done()
    waiter.cancel()
    await settle()


async def test_get_waits_for_an_add() -> None:
    q: Queue[str] = Queue()
    getter = asyncio.create_task(q.get())
    await settle()
    assert not getter.done()
    q.add("foo")
    assert await asyncio.wait_for(getter, 1) == "foo"


async def test_cancelled_get_loses_no_item() -> None:
    """A getter woken for an item but cancelled before it ran passes the wake-up on (asyncio-specific)."""
    q: Queue[str] = Queue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await settle()
    q.add("foo")  # wakes `first`
    first.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "foo"
    assert first.cancelled()


async def test_queue_drainage_using_shutdown_with_drain() -> None:
    """TestQueueDrainageUsingShutDownWithDrain: drain waits for every processing item to be done."""
    q: Queue[str] = Queue()
    q.add("foo")
    q.add("bar")
    first = await q.get()
    second = await q.get()

    drain = asyncio.create_task(q.shutdown_with_drain())
    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), 1)  # returns once the drain has started
    assert q.shutting_down()

    q.done(first)
    await settle()
    assert not drain.done(), "one item is still being processed"
    q.done(second)
    await asyncio.wait_for(drain, 1)


async def test_no_queue_drainage_using_shutdown() -> None:
    """TestNoQueueDrainageUsingShutDown: shutdown returns at once, with items still processing."""
    q: Queue[str] = Queue()
    q.add("foo")
    q.add("bar")
    await q.get()
    await q.get()

    q.shutdown()  # would never return if it waited for the items

    assert q.shutting_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), 1)


async def test_force_queue_shutdown_using_shutdown() -> None:
    """TestForceQueueShutdownUsingShutDown: a shutdown() during shutdown_with_drain() ends the drain."""
    q: Queue[str] = Queue()
    q.add("foo")
    q.add("bar")
    await q.get()
    await q.get()

    drain = asyncio.create_task(q.shutdown_with_drain())
    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), 1)
    await settle()
    assert not drain.done()

    q.shutdown()  # e.g. a second SIGTERM
    await asyncio.wait_for(drain, 1)


async def test_queue_drainage_using_shutdown_with_drain_with_dirty_item() -> None:
    """TestQueueDrainageUsingShutDownWithDrainWithDirtyItem: a dirty item is handed out once more."""
    q: Queue[str] = Queue()
    q.add("foo")
    gotten = await q.get()
    q.add("foo")

    drain = asyncio.create_task(q.shutdown_with_drain())
    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), 1)

    q.done(gotten)  # the dirty item goes back into the queue
    again = await asyncio.wait_for(q.get(), 1)
    assert again == "foo"
    assert not drain.done()
    q.done(again)

    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), 1)
    await asyncio.wait_for(drain, 1)


async def test_shutdown_with_drain_of_an_idle_queue_returns_at_once() -> None:
    q: Queue[str] = Queue()
    await asyncio.wait_for(q.shutdown_with_drain(), 1)
    q.add("late")
    assert len(q) == 0


async def test_shutdown_wakes_every_waiting_get() -> None:
    q: Queue[str] = Queue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    q.shutdown()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), 1)
    assert all(isinstance(r, ShutDown) for r in results)


async def test_shutdown_still_hands_out_queued_items() -> None:
    q: Queue[str] = Queue()
    q.add("foo")
    q.shutdown()
    assert await q.get() == "foo"
    with pytest.raises(ShutDown):
        await q.get()


class _Big:
    """A hashable (by identity) object that can be weakly referenced."""


async def test_garbage_collection() -> None:
    """TestGarbageCollection: an item added, processed and done is not kept alive by the queue or metrics."""
    q: Queue[_Big] = Queue(name="gc", clock=FakeClock(), metrics=RuntimeMetrics(CollectorRegistry()))
    item = _Big()
    ref = weakref.ref(item)
    q.add(item)
    gotten = await q.get()
    q.done(gotten)
    del item, gotten
    gc.collect()
    assert ref() is None


async def test_garbage_collection_of_waiting_items_at_shutdown(cleanup: Cleanup) -> None:
    clock = FakeClock()
    q: DelayingQueue[_Big] = cleanup(DelayingQueue(clock=clock))
    item = _Big()
    ref = weakref.ref(item)
    q.add_after(item, 10)
    await eventually(clock.has_waiters)
    q.shutdown()
    await settle()
    del item
    gc.collect()
    assert ref() is None


# ------------------------------------------------------------------------------------- delaying_queue_test.go


async def test_simple_queue(cleanup: Cleanup) -> None:
    """TestSimpleQueue."""
    clock = FakeClock(start=100.0)
    q: DelayingQueue[str] = cleanup(DelayingQueue(clock=clock))

    q.add_after("foo", 50 * MS)
    await eventually(deadline_is(clock, 100.05))
    assert len(q) == 0, "should not have added"

    clock.step(60 * MS)
    await eventually(lambda: len(q) == 1)
    item = await q.get()
    q.done(item)

    # step past the next heartbeat
    clock.step(10)
    await settle()
    assert len(q) == 0, "should not have added"
    assert not clock.has_waiters(), "nothing waits: the delaying task idles without a timer"


async def test_deduping(cleanup: Cleanup) -> None:
    """TestDeduping: a waiting item keeps the earlier of its ready times."""
    clock = FakeClock(start=100.0)
    q: DelayingQueue[str] = cleanup(DelayingQueue(clock=clock))
    first = "foo"

    q.add_after(first, 50 * MS)
    await eventually(deadline_is(clock, 100.05))
    q.add_after(first, 70 * MS)
    await settle()
    assert q.num_waiting() == 1
    assert len(q) == 0, "should not have added"

    # step past the first block, we should receive now
    clock.step(60 * MS)
    await eventually(lambda: len(q) == 1)
    item = await q.get()
    q.done(item)

    # step past the second add
    clock.step(20 * MS)
    await settle()
    assert len(q) == 0, "should not have added"

    # test again, but this time the earlier should override
    q.add_after(first, 50 * MS)
    q.add_after(first, 30 * MS)
    await eventually(deadline_is(clock, 100.08 + 0.03))  # the task was woken early and re-armed
    assert len(q) == 0, "should not have added"

    clock.step(40 * MS)
    await eventually(lambda: len(q) == 1)
    item = await q.get()
    q.done(item)

    # step past the second add
    clock.step(20 * MS)
    await settle()
    assert len(q) == 0, "should not have added"

    # test again, but this time the item is being processed: it runs once more after done
    q.add(first)
    item = await q.get()
    assert item == first
    q.add_after(first, 5 * MS)
    clock.step(5 * MS)
    await eventually(lambda: q.num_waiting() == 0)
    assert len(q) == 0, "a key being processed is not queued twice"
    q.done(first)
    assert len(q) == 1


async def test_add_two_fire_early(cleanup: Cleanup) -> None:
    """TestAddTwoFireEarly."""
    clock = FakeClock(start=100.0)
    q: DelayingQueue[str] = cleanup(DelayingQueue(clock=clock))
    first, second, third = "foo", "bar", "baz"

    q.add_after(first, 1)
    q.add_after(second, 50 * MS)
    await eventually(deadline_is(clock, 100.05))
    assert len(q) == 0, "should not have added"

    clock.step(60 * MS)
    await eventually(lambda: len(q) == 1)
    assert await q.get() == second

    q.add_after(third, 2)

    clock.step(1)
    await eventually(lambda: len(q) == 1)
    assert await q.get() == first

    clock.step(2)
    await eventually(lambda: len(q) == 1)
    assert await q.get() == third


async def test_copy_shifting(cleanup: Cleanup) -> None:
    """TestCopyShifting: items due together are added in ready-time order."""
    clock = FakeClock(start=100.0)
    q: DelayingQueue[str] = cleanup(DelayingQueue(clock=clock))
    first, second, third = "foo", "bar", "baz"

    q.add_after(first, 1)
    q.add_after(second, 500 * MS)
    q.add_after(third, 250 * MS)
    await eventually(deadline_is(clock, 100.25))
    assert len(q) == 0, "should not have added"

    clock.step(2)
    await eventually(lambda: len(q) == 3)
    assert [await q.get() for _ in range(3)] == [third, second, first]


async def test_an_earlier_item_wakes_the_sleeping_task(cleanup: Cleanup) -> None:
    """The task sleeping for a later item re-arms for an earlier one (client-go's waitingForAddCh case)."""
    clock = FakeClock(start=100.0)
    q: DelayingQueue[str] = cleanup(DelayingQueue(clock=clock))
    q.add_after("late", 10)
    await eventually(deadline_is(clock, 110.0))

    q.add_after("early", 1)
    await eventually(deadline_is(clock, 101.0))
    clock.step(1)
    await eventually(lambda: len(q) == 1)
    assert await q.get() == "early"

    q.add_after("late", 5)  # moves the waiting item earlier, also while the task sleeps
    await eventually(deadline_is(clock, 106.0))
    clock.step(5)
    await eventually(lambda: len(q) == 1)
    assert await q.get() == "late"
    await settle()
    assert not clock.has_waiters(), "the stale entry of the moved item does not arm a timer"


async def test_add_after_without_delay_adds_now(cleanup: Cleanup) -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = cleanup(DelayingQueue(clock=clock))
    q.add_after("now", 0)
    q.add_after("past", -1)
    assert len(q) == 2
    assert q.num_waiting() == 0


async def test_equal_ready_times_keep_add_after_order(cleanup: Cleanup) -> None:
    clock = FakeClock()
    q: DelayingQueue[int] = cleanup(DelayingQueue(clock=clock))
    for i in range(20):
        q.add_after(i, 1)
    clock.step(1)
    await eventually(lambda: len(q) == 20)
    assert [await q.get() for _ in range(20)] == list(range(20))


async def test_delaying_shutdown_drops_waiting_items_and_stops_the_task(cleanup: Cleanup) -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = cleanup(DelayingQueue(clock=clock))
    q.add_after("foo", 1)
    await eventually(clock.has_waiters)

    q.shutdown()
    await settle()
    assert not clock.has_waiters()
    assert q.num_waiting() == 0
    q.add_after("bar", 1)
    q.add_after("baz", 0)
    clock.step(5)
    await settle()
    assert len(q) == 0
    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), 1)


class _BrokenClock(FakeClock):
    async def sleep(self, seconds: float) -> None:
        raise OSError("clock is broken")


async def test_a_crashed_delaying_task_fails_get_loudly(cleanup: Cleanup) -> None:
    q: DelayingQueue[str] = cleanup(DelayingQueue(clock=_BrokenClock()))
    q.add("queued")
    q.add_after("foo", 1)
    await eventually(q.shutting_down)
    assert await q.get() == "queued", "what was queued is still handed out"
    with pytest.raises(RuntimeError, match="delaying task crashed") as info:
        await asyncio.wait_for(q.get(), 1)
    assert isinstance(info.value.__cause__, OSError)


# --------------------------------------------------------------------------------- rate_limiting_queue_test.go


class _RecordingQueue(RateLimitingQueue[str]):
    """Records what the rate-limiting layer hands to the delaying layer (Go reads waitingForAddCh)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delays: list[tuple[str, float]] = []

    def add_after(self, item: str, delay: float) -> None:
        self.delays.append((item, delay))
        super().add_after(item, delay)


async def test_rate_limiting_queue(cleanup: Cleanup) -> None:
    """TestRateLimitingQueue."""
    clock = FakeClock(start=100.0)
    q = cleanup(_RecordingQueue(rate_limiter=ItemExponentialFailureRateLimiter(1 * MS, 1.0), clock=clock))

    q.add_rate_limited("one")
    assert q.delays[-1] == ("one", 1 * MS)
    q.add_rate_limited("one")
    assert q.delays[-1] == ("one", 2 * MS)
    assert q.num_requeues("one") == 2

    q.add_rate_limited("two")
    assert q.delays[-1] == ("two", 1 * MS)
    q.add_rate_limited("two")
    assert q.delays[-1] == ("two", 2 * MS)

    q.forget("one")
    assert q.num_requeues("one") == 0
    q.add_rate_limited("one")
    assert q.delays[-1] == ("one", 1 * MS)

    # Each key waits once, at its earliest ready time: both are due after 1 ms.
    assert q.num_waiting() == 2
    clock.step(1 * MS)
    await eventually(lambda: len(q) == 2)
    assert {await q.get(), await q.get()} == {"one", "two"}


async def test_rate_limiting_queue_defaults_to_the_controller_limiter(cleanup: Cleanup) -> None:
    """TestNewNamedRateLimitingWithCustomQueue, on the plain queue: 5 ms first backoff."""
    clock = FakeClock()
    q: RateLimitingQueue[str] = cleanup(RateLimitingQueue(clock=clock))
    q.add_rate_limited("one")
    await eventually(deadline_is(clock, 0.005))
    assert len(q) == 0
    clock.step(0.005)
    assert await asyncio.wait_for(q.get(), 1) == "one"
    assert q.num_requeues("one") == 1


# ------------------------------------------------------------------------------------------- metrics_test.go


def _value(metrics: RuntimeMetrics, sample: str, name: str = "test") -> float:
    value = metrics.registry.get_sample_value(sample, {"name": name})
    assert value is not None, f"no sample {sample}{{name={name!r}}}"
    return value


async def test_metrics() -> None:
    """TestMetrics: adds, depth, queue latency, work duration, unfinished work and longest processor."""
    metrics = RuntimeMetrics(CollectorRegistry())
    clock = FakeClock(start=0.0)
    q: Queue[str] = Queue(name="test", clock=clock, metrics=metrics)

    q.add("foo")
    assert _value(metrics, "workqueue_adds_total") == 1
    assert _value(metrics, "workqueue_depth") == 1

    clock.step(50e-6)

    # Start processing
    item = await q.get()
    assert item == "foo"
    assert _value(metrics, "workqueue_queue_duration_seconds_sum") == pytest.approx(5e-05)
    assert _value(metrics, "workqueue_queue_duration_seconds_count") == 1

    # Add it back while processing; multiple adds of the same item are de-duped.
    for _ in range(5):
        q.add(item)
    assert _value(metrics, "workqueue_adds_total") == 2
    # One thing remains in the queue
    assert _value(metrics, "workqueue_depth") == 1

    clock.step(25e-6)

    # Finish it up
    q.done(item)
    assert _value(metrics, "workqueue_work_duration_seconds_sum") == pytest.approx(2.5e-05)
    assert _value(metrics, "workqueue_work_duration_seconds_count") == 1
    # One thing remains in the queue
    assert _value(metrics, "workqueue_depth") == 1

    # It should be back on the queue
    item = await q.get()
    assert item == "foo"
    assert _value(metrics, "workqueue_depth") == 0
    # The latency of the second round is measured from the re-add: 25 us.
    assert _value(metrics, "workqueue_queue_duration_seconds_sum") == pytest.approx(5e-05 + 2.5e-05)
    assert _value(metrics, "workqueue_queue_duration_seconds_count") == 2

    clock.step(1 * MS)
    assert _value(metrics, "workqueue_unfinished_work_seconds") == pytest.approx(0.001)
    assert _value(metrics, "workqueue_longest_running_processor_seconds") == pytest.approx(0.001)

    # Finish that one up
    q.done(item)
    assert _value(metrics, "workqueue_work_duration_seconds_sum") == pytest.approx(2.5e-05 + 0.001)
    assert _value(metrics, "workqueue_work_duration_seconds_count") == 2
    assert _value(metrics, "workqueue_unfinished_work_seconds") == 0
    assert _value(metrics, "workqueue_longest_running_processor_seconds") == 0
    q.shutdown()


async def test_unfinished_work_sums_and_longest_running_takes_the_max() -> None:
    metrics = RuntimeMetrics(CollectorRegistry())
    clock = FakeClock()
    q: Queue[str] = Queue(name="test", clock=clock, metrics=metrics)
    q.add("a")
    q.add("b")
    await q.get()
    clock.step(1)
    await q.get()
    clock.step(1)
    assert _value(metrics, "workqueue_unfinished_work_seconds") == pytest.approx(3.0)
    assert _value(metrics, "workqueue_longest_running_processor_seconds") == pytest.approx(2.0)
    q.shutdown()


async def test_metric_shutdown() -> None:
    """TestMetricShutdown: the unfinished-work gauges are not updated after shutdown."""
    metrics = RuntimeMetrics(CollectorRegistry())
    clock = FakeClock()
    q: Queue[str] = Queue(name="test", clock=clock, metrics=metrics)
    q.add("foo")
    await q.get()
    clock.step(1 * MS)
    assert _value(metrics, "workqueue_unfinished_work_seconds") == pytest.approx(0.001)

    q.shutdown()
    clock.step(3600)
    assert _value(metrics, "workqueue_unfinished_work_seconds") == pytest.approx(0.001)
    assert _value(metrics, "workqueue_longest_running_processor_seconds") == pytest.approx(0.001)


async def test_retries_metric_counts_add_after_like_client_go(cleanup: Cleanup) -> None:
    metrics = RuntimeMetrics(CollectorRegistry())
    clock = FakeClock()
    q: RateLimitingQueue[str] = cleanup(RateLimitingQueue(name="rl", clock=clock, metrics=metrics))

    q.add("plain")
    assert _value(metrics, "workqueue_retries_total", "rl") == 0
    q.add_rate_limited("one")
    q.add_rate_limited("one")
    assert _value(metrics, "workqueue_retries_total", "rl") == 2
    q.add_after("two", 0)  # client-go counts every AddAfter as a retry
    assert _value(metrics, "workqueue_retries_total", "rl") == 3

    q.shutdown()
    q.add_rate_limited("late")
    assert _value(metrics, "workqueue_retries_total", "rl") == 3


async def test_queues_with_different_names_have_separate_series() -> None:
    metrics = RuntimeMetrics(CollectorRegistry())
    a: Queue[str] = Queue(name="a", clock=FakeClock(), metrics=metrics)
    b: Queue[str] = Queue(name="b", clock=FakeClock(), metrics=metrics)
    a.add("x")
    a.add("y")
    b.add("x")
    assert _value(metrics, "workqueue_adds_total", "a") == 2
    assert _value(metrics, "workqueue_adds_total", "b") == 1
    a.shutdown()
    b.shutdown()


def test_metrics_need_a_name() -> None:
    with pytest.raises(ValueError, match="name"):
        Queue(metrics=RuntimeMetrics(CollectorRegistry()))
