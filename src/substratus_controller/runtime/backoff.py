"""Exponential backoff with jitter, as client-go's reflector uses between failed LIST/WATCH attempts.

`next()` returns initial * factor^n seconds plus up to `jitter` times that much at random, capped at
`maximum` (client-go's reflector: 800 ms -> 30 s, factor 2, jitter 1.0; unlike client-go the cap also bounds
the jitter, so a recovered server is retried within `maximum` seconds). After `reset_after` seconds without a failure
the sequence starts over; `reset()` starts it over at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """A failure-driven delay sequence (see module docstring). Not thread-safe; one per retry loop."""

    def __init__(
        self,
        *,
        initial: float = 0.8,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        reset_after: float = 120.0,
        rng: Callable[[], float] = random.random,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self.reset_after = reset_after
        self._rng, self._now = rng, now
        self._base = 0.0
        self._last_failure = float("-inf")

    def next(self) -> float:
        """The delay to wait after a new failure."""
        now = self._now()
        if self._base == 0.0 or now - self._last_failure > self.reset_after:
            self._base = self.initial
        else:
            self._base = min(self._base * self.factor, self.maximum)
        self._last_failure = now
        return min(self._base + self._base * self.jitter * self._rng(), self.maximum)

    def reset(self) -> None:
        self._base = 0.0
