"""Kubernetes' time formats (pure): metav1.Time (RFC 3339, whole seconds, UTC) and metav1.MicroTime.

The one formatter and parser of API timestamps; callers pass the time (a Clock's `wall()`): nothing here
reads the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(when: datetime) -> str:
    """metav1.Time: RFC 3339 with whole seconds, UTC (`2026-12-01T10:00:00Z`)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(when: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(value: str) -> datetime:
    """A metav1.Time or MicroTime string as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
