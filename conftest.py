"""Root of the test tree: reports how long each tier took (the README quotes these figures)."""

from __future__ import annotations

from typing import Any

import pytest

TIER_SECONDS = {"fast": 0.0, "realnode": 0.0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    TIER_SECONDS["realnode" if "realnode" in report.keywords else "fast"] += report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The time each tier took in this run (setup + call + teardown of its tests)."""
    fast, real = TIER_SECONDS["fast"], TIER_SECONDS["realnode"]
    terminalreporter.write_line(f"tiers: fast {fast:.0f}s, real node {real:.0f}s (setup + call + teardown)")
