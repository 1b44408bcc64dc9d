"""Fast tier: the event-loop lag monitor sees a blocked loop, and nothing much on an idle one."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry

from substratus_controller.runtime.looplag import watch_lag
from substratus_controller.runtime.metrics import RuntimeMetrics


async def test_a_blocked_loop_is_seen_as_lag() -> None:
    metrics = RuntimeMetrics(CollectorRegistry())
    task = asyncio.create_task(watch_lag(metrics, interval=0.01))
    await asyncio.sleep(0.05)
    idle = metrics.registry.get_sample_value("event_loop_lag_max_seconds")
    time.sleep(0.3)  # blocks the loop, as a long synchronous step would
    await asyncio.sleep(0.05)
    task.cancel()
    worst = metrics.registry.get_sample_value("event_loop_lag_max_seconds")
    assert idle is not None
    assert idle < 0.1
    assert worst is not None
    assert worst >= 0.25
    assert (metrics.registry.get_sample_value("event_loop_lag_seconds_count") or 0) >= 3
