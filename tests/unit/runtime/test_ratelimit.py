"""Rate limiters, ported from client-go's util/workqueue/default_rate_limiters_test.go (durations in seconds),
plus token-bucket and default-limiter tests on a fake clock."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from substratus_controller.runtime.clock import FakeClock
from substratus_controller.runtime.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    ItemFastSlowRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    WithMaxWaitRateLimiter,
    default_controller_rate_limiter,
)

MS = 0.001
MINUTE = 60.0
HOUR = 3600.0


def test_item_exponential_failure_rate_limiter() -> None:
    """TestItemExponentialFailureRateLimiter."""
    limiter = ItemExponentialFailureRateLimiter(1 * MS, 1.0)

    assert [limiter.when("one") for _ in range(5)] == [1 * MS, 2 * MS, 4 * MS, 8 * MS, 16 * MS]
    assert limiter.num_requeues("one") == 5

    assert limiter.when("two") == 1 * MS
    assert limiter.when("two") == 2 * MS
    assert limiter.num_requeues("two") == 2

    limiter.forget("one")
    assert limiter.num_requeues("one") == 0
    assert limiter.when("one") == 1 * MS


def test_item_exponential_failure_rate_limiter_overflow() -> None:
    """TestItemExponentialFailureRateLimiterOverFlow."""
    limiter = ItemExponentialFailureRateLimiter(1 * MS, 1000.0)
    for _ in range(5):
        limiter.when("one")
    assert limiter.when("one") == 32 * MS

    for _ in range(1000):
        limiter.when("overflow1")
    assert limiter.when("overflow1") == 1000.0

    limiter = ItemExponentialFailureRateLimiter(1 * MINUTE, 1000 * HOUR)
    for _ in range(2):
        limiter.when("two")
    assert limiter.when("two") == 4 * MINUTE

    for _ in range(1000):
        limiter.when("overflow2")
    assert limiter.when("overflow2") == 1000 * HOUR


def test_item_exponential_failure_rate_limiter_survives_exponents_beyond_float_range() -> None:
    limiter = ItemExponentialFailureRateLimiter(1 * MS, 1000.0)
    for _ in range(5000):
        assert limiter.when("x") <= 1000.0
    assert limiter.when("x") == 1000.0
    assert limiter.num_requeues("x") == 5001


def test_item_fast_slow_rate_limiter() -> None:
    """TestItemFastSlowRateLimiter."""
    limiter = ItemFastSlowRateLimiter(5 * MS, 10.0, 3)

    assert [limiter.when("one") for _ in range(5)] == [5 * MS, 5 * MS, 5 * MS, 10.0, 10.0]
    assert limiter.num_requeues("one") == 5

    assert limiter.when("two") == 5 * MS
    assert limiter.when("two") == 5 * MS
    assert limiter.num_requeues("two") == 2

    limiter.forget("one")
    assert limiter.num_requeues("one") == 0
    assert limiter.when("one") == 5 * MS


def test_max_of_rate_limiter() -> None:
    """TestMaxOfRateLimiter."""
    limiter = MaxOfRateLimiter(
        ItemFastSlowRateLimiter(5 * MS, 3.0, 3),
        ItemExponentialFailureRateLimiter(1 * MS, 1.0),
    )

    assert [limiter.when("one") for _ in range(5)] == [5 * MS, 5 * MS, 5 * MS, 3.0, 3.0]
    assert limiter.num_requeues("one") == 5

    assert limiter.when("two") == 5 * MS
    assert limiter.when("two") == 5 * MS
    assert limiter.num_requeues("two") == 2

    limiter.forget("one")
    assert limiter.num_requeues("one") == 0
    assert limiter.when("one") == 5 * MS


class StepRateLimiter:
    """The test limiter of client-go's TestWithMaxWaitRateLimiter: base delay up to a threshold, then max."""

    def __init__(self, base_delay: float, max_delay: float, threshold: int) -> None:
        self.count = 0
        self.base_delay, self.max_delay, self.threshold = base_delay, max_delay, threshold

    def when(self, item: Hashable) -> float:
        self.count += 1
        return self.base_delay if self.count <= self.threshold else self.max_delay

    def forget(self, item: Hashable) -> None:
        return None

    def num_requeues(self, item: Hashable) -> int:
        return 0


def test_with_max_wait_rate_limiter() -> None:
    """TestWithMaxWaitRateLimiter."""
    limiter = WithMaxWaitRateLimiter(StepRateLimiter(5 * MS, 1000.0, 100), 500.0)
    assert [limiter.when(i) for i in range(100)] == [5 * MS] * 100
    assert [limiter.when(i) for i in range(100, 200)] == [500.0] * 100


def test_bucket_rate_limiter_spends_the_burst_then_queues_reservations() -> None:
    clock = FakeClock(start=50.0)
    limiter = BucketRateLimiter(10, 3, clock=clock)

    # The bucket is shared by all items and starts full.
    assert [limiter.when(item) for item in ("a", "b", "a")] == [0.0, 0.0, 0.0]
    # Then each reservation waits one more token interval (the bucket goes into debt, like x/time/rate).
    assert limiter.when("c") == pytest.approx(0.1)
    assert limiter.when("c") == pytest.approx(0.2)

    # 0.2 s pays the debt of 2 tokens: the next reservation waits one interval again.
    clock.step(0.2)
    assert limiter.when("d") == pytest.approx(0.1)

    # Refill is capped at the burst.
    clock.step(100)
    assert [limiter.when("e") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.when("e") == pytest.approx(0.1)

    # It tracks no items.
    assert limiter.num_requeues("e") == 0
    limiter.forget("e")
    assert limiter.when("e") == pytest.approx(0.2)


def test_bucket_rate_limiter_refills_at_qps() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(10, 1, clock=clock)
    assert limiter.when("x") == 0.0
    clock.step(0.05)  # half a token
    assert limiter.when("x") == pytest.approx(0.05)
    clock.step(0.15)  # debt of half a token paid, one more earned; capped at burst 1
    assert limiter.when("x") == 0.0


def test_bucket_rate_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="qps"):
        BucketRateLimiter(0, 1)
    with pytest.raises(ValueError, match="burst"):
        BucketRateLimiter(1, -1)


def test_default_controller_rate_limiter() -> None:
    """max(per-item 5 ms * 2^n capped at 1000 s, overall 10 qps burst 100)."""
    clock = FakeClock()
    limiter: RateLimiter = default_controller_rate_limiter(clock)

    # Within the burst, the per-item backoff decides.
    assert [limiter.when(i) for i in range(99)] == [0.005] * 99
    assert limiter.when("hot") == 0.005
    assert limiter.num_requeues("hot") == 1
    # Past the burst of 100, the bucket decides: one token per 100 ms.
    assert limiter.when("hot") == pytest.approx(0.1)
    assert limiter.when("new") == pytest.approx(0.2)

    # Once the bucket refilled, the exponential backoff of a failing item shows again, up to 1000 s.
    clock.step(60)
    assert limiter.when("hot") == pytest.approx(0.005 * 4)
    for _ in range(40):
        limiter.when("hot")
    clock.step(60)
    assert limiter.when("hot") == 1000.0

    limiter.forget("hot")
    assert limiter.num_requeues("hot") == 0
    assert limiter.when("hot") == 0.005
