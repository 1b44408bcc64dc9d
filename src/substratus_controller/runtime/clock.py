"""An injectable monotonic clock, so that time-driven runtime code is testable without real sleeps.

Everything in the runtime that reads the time or waits for it (workqueue delays, rate limiters, metrics of
latency) takes a `Clock` instead of calling `time` or `asyncio.sleep` directly. Production code uses
`RealClock`; tests use `FakeClock` and move time by hand.

Invariants:
- `now()` is monotonic seconds: it never goes backwards (the fake clock refuses to be moved backwards).
- `FakeClock` is deterministic: time moves only on `step`/`set`, and moving it wakes exactly the sleepers
  whose deadline is at or before the new time (client-go's fake clock fires when `!now.Before(deadline)`),
  in deadline order (ties in the order they started sleeping). Woken sleepers resume on the event loop's next
  iterations, never inside `step`/`set` itself.
- Unlike k8s.io/utils' FakeClock, `FakeClock.sleep` does not advance time: it blocks until someone else does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from .times import rfc3339

__all__ = ["FAKE_EPOCH", "Clock", "FakeClock", "RealClock", "wall_rfc3339"]

FAKE_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # a FakeClock's wall time at its reading 0


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic time and of waiting for it.

    `now()` returns monotonic seconds (an arbitrary origin, comparable only with other readings of the same
    clock); `wall()` the wall time (aware, UTC), for timestamps written to the API, never for measuring.
    `sleep(seconds)` returns once at least `seconds` have passed on this clock; `seconds <= 0` still yields
    to the event loop once.
    """

    def now(self) -> float: ...

    def wall(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """The event loop's clock: `now()` is the running loop's `time()`, `sleep` is `asyncio.sleep`.

    Outside a running loop `now()` falls back to `time.monotonic()`, which is what the default asyncio loop
    uses, so readings taken inside and outside the loop are comparable.
    """

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class FakeClock:
    """A clock that moves only when told to (`step`, `set`); sleepers wait until it passes their deadline.

    Contract:
    - `sleep(d)` with `d <= 0` yields once and returns; otherwise it blocks until the clock reaches
      `now() + d` (measured when `sleep` was called). A cancelled sleeper is forgotten.
    - `step(d)` / `set(t)` move time forward (moving backwards raises `ValueError`) and wake exactly the
      sleepers whose deadline is `<=` the new time, earliest deadline first.
    - `has_waiters()` tells whether anyone is sleeping; `next_deadline()` is the earliest pending deadline.
    Single event loop only; not thread-safe (nothing in the runtime uses threads).
    """

    def __init__(self, *, start: float = 0.0, epoch: datetime = FAKE_EPOCH) -> None:
        self._now = float(start)
        self._epoch = epoch
        self._seq = itertools.count()
        # (deadline, sequence, future); cancelled or already-woken futures are skipped lazily.
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        """`epoch` plus the clock's reading: wall time moves exactly as the fake monotonic time does."""
        return self._epoch + timedelta(seconds=self._now)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()
            self._prune()

    def step(self, seconds: float) -> None:
        """Move time forward by `seconds` and wake the sleepers that are due."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot step backwards (step {seconds!r})")
        self.set(self._now + seconds)

    def set(self, t: float) -> None:
        """Move time forward to `t` and wake the sleepers that are due."""
        if t < self._now:
            raise ValueError(f"a monotonic clock cannot go backwards ({self._now!r} -> {t!r})")
        self._now = float(t)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def has_waiters(self) -> bool:
        """Whether any coroutine is sleeping on this clock."""
        self._prune()
        return bool(self._sleepers)

    def next_deadline(self) -> float | None:
        """The earliest deadline any sleeper waits for, or None when nobody sleeps."""
        self._prune()
        return self._sleepers[0][0] if self._sleepers else None

    def _prune(self) -> None:
        if any(fut.done() for _, _, fut in self._sleepers):
            self._sleepers = [s for s in self._sleepers if not s[2].done()]
            heapq.heapify(self._sleepers)


def wall_rfc3339() -> str:
    """The real wall clock as metav1.Time (for callers without an injected Clock)."""
    return rfc3339(RealClock().wall())
