"""Event-loop lag: how late a periodic wake-up comes, the measure of how long the loop was blocked (P8).

`watch_lag(metrics)` sleeps `interval` in a loop and records each wake-up's lateness in
`event_loop_lag_seconds` (a histogram) and the largest seen in `event_loop_lag_max_seconds` (a gauge that
only grows, so a scrape after a relist still shows its worst stall). It costs one wake-up per interval.

Invariant: lateness is measured against the monotonic clock and is never negative.
"""

from __future__ import annotations

import asyncio
import time

from .metrics import RuntimeMetrics

INTERVAL = 0.05  # seconds between wake-ups: fine enough for a 100 ms target, 20 wake-ups a second


async def watch_lag(metrics: RuntimeMetrics, interval: float = INTERVAL) -> None:
    """Record the loop's lateness until cancelled."""
    worst = 0.0
    while True:
        due = time.monotonic() + interval
        await asyncio.sleep(interval)
        late = max(0.0, time.monotonic() - due)
        metrics.loop_lag.observe(late)
        if late > worst:
            worst = late
            metrics.loop_lag_max.set(worst)
