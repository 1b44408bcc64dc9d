"""Rate limiters for the workqueue, after client-go's util/workqueue/default_rate_limiters.go.

A rate limiter answers "how long should this item wait before it is processed again?". Every limiter has:
- `when(item) -> float`: the delay in seconds for this attempt; it records the attempt (a failure), so two
  calls for the same item are two failures;
- `forget(item)`: the item succeeded; drop its failure history (it starts from the base delay again);
- `num_requeues(item) -> int`: how many failures are on record for the item.

Invariants:
- Delays are finite, non-negative seconds and never exceed a limiter's configured maximum; the exponential
  limiter cannot overflow however many failures it records.
- Per-item limiters keep state only for items that failed and not yet forgotten (`forget` frees it).
- The token bucket reads time only from its injected `Clock`, so it is exact under a `FakeClock`.
- `default_controller_rate_limiter` is client-go's `DefaultControllerRateLimiter`: the max of a per-item
  exponential backoff (5 ms * 2^failures, capped at 1000 s) and an overall token bucket (10 qps, burst 100).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, runtime_checkable

from substratus_controller.runtime.clock import Clock, RealClock

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialFailureRateLimiter",
    "ItemFastSlowRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "WithMaxWaitRateLimiter",
    "default_controller_rate_limiter",
]

# 2.0**1023 is the largest power of two a float holds; beyond it base * 2**n is always above any sane maximum.
_MAX_EXPONENT = 1023


@runtime_checkable
class RateLimiter(Protocol):
    """The limiter contract the rate-limiting queue relies on (see the module docstring)."""

    def when(self, item: Hashable) -> float: ...

    def forget(self, item: Hashable) -> None: ...

    def num_requeues(self, item: Hashable) -> int: ...


class ItemExponentialFailureRateLimiter:
    """Per-item exponential backoff: the n-th `when` (n counted from 0) of an item is `base_delay * 2**n`,
    capped at `max_delay`.

    Failures are counted per item until `forget`. Overflow-safe: after enough failures the delay is simply
    `max_delay`.
    """

    def __init__(self, base_delay: float, max_delay: float) -> None:
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must be non-negative")
        self._base = float(base_delay)
        self._max = float(max_delay)
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exponent = self._failures.get(item, 0)
        self._failures[item] = exponent + 1
        if exponent >= _MAX_EXPONENT:
            return self._max
        # A float product never raises: at worst it is inf, which min() caps.
        return min(self._base * 2.0**exponent, self._max)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class ItemFastSlowRateLimiter:
    """Per-item two-speed limiter: the first `max_fast_attempts` failures of an item wait `fast_delay`,
    every later one waits `slow_delay`, until `forget`."""

    def __init__(self, fast_delay: float, slow_delay: float, max_fast_attempts: int) -> None:
        if fast_delay < 0 or slow_delay < 0 or max_fast_attempts < 0:
            raise ValueError("delays and attempts must be non-negative")
        self._fast = float(fast_delay)
        self._slow = float(slow_delay)
        self._max_fast = max_fast_attempts
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        attempts = self._failures.get(item, 0) + 1
        self._failures[item] = attempts
        return self._fast if attempts <= self._max_fast else self._slow

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket (not per item): `qps` tokens per second, at most `burst` stored, full at start.

    `when(item)` reserves one token and returns how long to wait until that token exists, like
    golang.org/x/time/rate's `Reserve().Delay()`: the bucket may go into debt, so a burst of `burst + k`
    calls at one instant gets delays 0 (x burst), 1/qps, 2/qps, ... k/qps. Time comes from the injected
    clock. It tracks no items: `num_requeues` is always 0 and `forget` does nothing.
    """

    def __init__(self, qps: float, burst: int, *, clock: Clock | None = None) -> None:
        if qps <= 0:
            raise ValueError("qps must be positive")
        if burst < 0:
            raise ValueError("burst must be non-negative")
        self._qps = float(qps)
        self._burst = float(burst)
        self._clock: Clock = clock if clock is not None else RealClock()
        self._tokens = self._burst
        self._last: float | None = None

    def when(self, item: Hashable) -> float:
        now = self._clock.now()
        last = now if self._last is None or self._last > now else self._last
        tokens = min(self._burst, self._tokens + (now - last) * self._qps)
        tokens -= 1.0
        self._tokens = tokens
        self._last = now
        return -tokens / self._qps if tokens < 0 else 0.0

    def forget(self, item: Hashable) -> None:
        return None

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """Combines limiters: `when` asks every limiter (each records the failure) and returns the longest delay;
    `num_requeues` is the largest count; `forget` forgets in all of them."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self._limiters = limiters

    def when(self, item: Hashable) -> float:
        return max([limiter.when(item) for limiter in self._limiters])

    def forget(self, item: Hashable) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self._limiters)


class WithMaxWaitRateLimiter:
    """Caps another limiter's delay at `max_delay`; counts and forgetting are the wrapped limiter's."""

    def __init__(self, limiter: RateLimiter, max_delay: float) -> None:
        self._limiter = limiter
        self._max = float(max_delay)

    def when(self, item: Hashable) -> float:
        return min(self._limiter.when(item), self._max)

    def forget(self, item: Hashable) -> None:
        self._limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return self._limiter.num_requeues(item)


def default_controller_rate_limiter(clock: Clock | None = None) -> MaxOfRateLimiter:
    """client-go's DefaultControllerRateLimiter: max(5 ms * 2^failures capped at 1000 s, 10 qps burst 100)."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(10.0, 100, clock=clock),
    )
