"""The injectable clock: RealClock follows the event loop, FakeClock moves only when told and wakes exactly
the sleepers that are due."""

from __future__ import annotations

import asyncio

import pytest

from substratus_controller.runtime.clock import Clock, FakeClock, RealClock


async def settle(rounds: int = 20) -> None:
    """Let every ready task run until the loop is quiet (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(RealClock(), Clock)
    assert isinstance(FakeClock(), Clock)


async def test_real_clock_reads_loop_time_and_really_sleeps() -> None:
    clock = RealClock()
    loop = asyncio.get_running_loop()
    before = clock.now()
    assert abs(before - loop.time()) < 0.01
    await clock.sleep(0.002)
    assert clock.now() - before >= 0.002


async def test_fake_sleep_blocks_until_time_reaches_the_deadline() -> None:
    clock = FakeClock(start=10.0)
    sleeper = asyncio.create_task(clock.sleep(1.0))
    await settle()
    assert not sleeper.done()
    assert clock.has_waiters()
    assert clock.next_deadline() == 11.0

    clock.step(0.5)
    await settle()
    assert not sleeper.done()

    clock.step(0.5)  # exactly at the deadline: due (client-go fires when !now.Before(deadline))
    await asyncio.wait_for(sleeper, 1)
    assert clock.now() == 11.0
    assert not clock.has_waiters()
    assert clock.next_deadline() is None


async def test_step_wakes_exactly_the_due_sleepers_in_deadline_order() -> None:
    clock = FakeClock()
    woken: list[float] = []

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        woken.append(seconds)

    tasks = [asyncio.create_task(sleep(s)) for s in (3.0, 1.0, 5.0, 2.0)]
    await settle()
    clock.step(2.5)
    await settle()
    assert woken == [1.0, 2.0]
    assert clock.has_waiters()
    assert clock.next_deadline() == 3.0

    clock.set(10.0)
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert woken == [1.0, 2.0, 3.0, 5.0]
    assert not clock.has_waiters()


async def test_time_does_not_pass_by_sleeping() -> None:
    clock = FakeClock(start=1.0)
    sleeper = asyncio.create_task(clock.sleep(5))
    await settle()
    assert clock.now() == 1.0
    sleeper.cancel()
    await settle()


async def test_non_positive_sleep_returns_at_once() -> None:
    clock = FakeClock()
    await asyncio.wait_for(clock.sleep(0), 1)
    await asyncio.wait_for(clock.sleep(-1), 1)
    assert not clock.has_waiters()


async def test_cancelled_sleeper_is_forgotten() -> None:
    clock = FakeClock()
    sleeper = asyncio.create_task(clock.sleep(1))
    await settle()
    assert clock.has_waiters()
    sleeper.cancel()
    await settle()
    assert sleeper.cancelled()
    assert not clock.has_waiters()
    clock.step(2)  # waking a forgotten sleeper must not fail


def test_fake_clock_never_goes_backwards() -> None:
    clock = FakeClock(start=5.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.step(-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(4.0)
    clock.set(5.0)
    assert clock.now() == 5.0
