"""The controller loop's handling of reconcile outcomes, on a fake clock (no API server involved)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from substratus_controller.runtime.clock import FakeClock
from substratus_controller.runtime.controller import Controller, Request, Result, RetryableError, TerminalError
from substratus_controller.runtime.errors import Conflict, NotFound, ServerError
from substratus_controller.runtime.metrics import RuntimeMetrics

Reconciler = Callable[[Request], Awaitable[Result | None]]


def sample(metrics: RuntimeMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def settle(rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


class Harness:
    def __init__(self, reconcile: Reconciler, *, workers: int = 1) -> None:
        self.clock = FakeClock()
        self.metrics = RuntimeMetrics()
        self.controller = Controller("test", reconcile, workers=workers, metrics=self.metrics, clock=self.clock)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.controller.run())
        await settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.controller.shutdown(drain=False)
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    def total(self, result: str) -> float:
        return sample(self.metrics, "controller_runtime_reconcile_total", controller="test", result=result)


KEY = Request("ns", "a")


async def test_success_forgets_and_counts() -> None:
    seen: list[Request] = []

    async def ok(req: Request) -> None:
        seen.append(req)

    async with Harness(ok) as h:
        h.controller.queue.add(KEY)
        await settle()
        assert seen == [KEY]
        assert h.total("success") == 1
        assert h.controller.queue.num_requeues(KEY) == 0


async def test_requeue_after_waits_then_runs_again() -> None:
    calls = Counter[Request]()

    async def later(req: Request) -> Result:
        calls[req] += 1
        return Result(requeue_after=30)

    async with Harness(later) as h:
        h.controller.queue.add(KEY)
        await settle()
        assert calls[KEY] == 1
        h.clock.step(29)
        await settle()
        assert calls[KEY] == 1, "not before the delay"
        h.clock.step(1.5)
        await settle()
        assert calls[KEY] == 2
        assert h.total("requeue_after") == 2


async def test_terminal_error_is_recorded_once_and_never_retried() -> None:
    calls = 0

    async def invalid(req: Request) -> None:
        nonlocal calls
        calls += 1
        raise TerminalError("spec.image: required")

    async with Harness(invalid) as h:
        h.controller.queue.add(KEY)
        await settle()
        h.clock.step(3600)
        await settle()
        assert calls == 1
        assert sample(h.metrics, "controller_runtime_terminal_reconcile_errors_total", controller="test") == 1
        assert h.total("error") == 1


async def test_a_conflict_is_a_quiet_rate_limited_requeue() -> None:
    calls = 0

    async def racy(req: Request) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Conflict("the object has been modified", code=409)

    async with Harness(racy) as h:
        h.controller.queue.add(KEY)
        await settle()
        h.clock.step(0.01)  # the first per-item backoff is 5 ms
        await settle()
        assert calls == 2
        assert h.total("requeue") == 1
        assert sample(h.metrics, "controller_runtime_reconcile_errors_total", controller="test") == 0


@pytest.mark.parametrize(
    ("error", "panic"),
    [(ServerError("boom", code=500), False), (RetryableError("storage down"), False), (KeyError("bug"), True)],
)
async def test_errors_retry_with_backoff_and_only_bugs_count_as_panics(error: Exception, panic: bool) -> None:
    async def failing(req: Request) -> None:
        raise error

    async with Harness(failing) as h:
        h.controller.queue.add(KEY)
        await settle()
        assert sample(h.metrics, "controller_runtime_reconcile_errors_total", controller="test") == 1
        assert sample(h.metrics, "controller_runtime_reconcile_panics_total", controller="test") == (1 if panic else 0)
        assert h.controller.queue.num_requeues(KEY) == 1


async def test_an_always_failing_key_backs_off_to_1000s_without_starving_others() -> None:
    """R6: exponential per-item backoff capped at 1000 s; other keys keep being reconciled meanwhile."""
    calls = Counter[str]()

    async def reconcile(req: Request) -> None:
        calls[req.name] += 1
        if req.name == "bad":
            raise NotFound("dependency missing", code=404)

    async with Harness(reconcile) as h:
        queue = h.controller.queue
        bad = Request("ns", "bad")
        queue.add(bad)
        await settle()
        # Drive failures until the delay reaches its cap: 5 ms * 2^n <= 1000 s -> n = 18 (1310.72 s capped).
        for _ in range(30):
            h.clock.step(1000.0)
            await settle()
        assert queue.rate_limiter.when(bad) == 1000.0  # the next delay is at the cap (this also counts a failure)
        before = calls["bad"]
        # Meanwhile other keys are reconciled at once.
        for i in range(20):
            queue.add(Request("ns", f"good-{i}"))
        await settle(rounds=200)
        assert all(calls[f"good-{i}"] == 1 for i in range(20))
        assert calls["bad"] == before, "the failing key waits for its backoff"


async def test_a_key_is_never_reconciled_twice_at_once_with_many_workers() -> None:
    running: set[Request] = set()
    overlaps = 0
    release = asyncio.Event()

    async def slow(req: Request) -> None:
        nonlocal overlaps
        if req in running:
            overlaps += 1
        running.add(req)
        await release.wait()
        running.discard(req)

    async with Harness(slow, workers=4) as h:
        for _ in range(5):
            h.controller.queue.add(KEY)
            await settle()
        h.controller.queue.add(Request("ns", "b"))
        await settle()
        assert running == {KEY, Request("ns", "b")}
        release.set()
        await settle()
        assert overlaps == 0


async def test_a_worker_yields_to_the_loop_between_reconciles() -> None:
    """Reconciles that never suspend (everything cached, nothing to write) must not starve the loop: another
    task runs between two of them, so a resync of 10,000 objects is not one 4 s block (P8)."""
    order: list[str] = []

    async def cached(req: Request) -> None:
        order.append("reconcile")

    async def other() -> None:
        for _ in range(5):
            order.append("other")
            await asyncio.sleep(0)

    async with Harness(cached) as h:
        for i in range(200):
            h.controller.queue.add(Request("ns", f"o-{i}"))
        task = asyncio.create_task(other())
        await settle(400)
        await task
    first_other = order.index("other")
    assert order.count("reconcile") == 200
    assert first_other < 10, order[:20]  # the other task got a turn almost at once
    assert order[first_other + 1 : first_other + 40].count("other") >= 2, "and kept getting turns"
