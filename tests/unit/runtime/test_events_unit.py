"""The pure parts of the EventRecorder: redaction, truncation, keys, bodies, the token bucket and spam filter on
a fake clock, and `event()` (queueing, coalescing, the queue bound, never raising). No API server: the recorder
is built on a Client that is never used (nothing here awaits `run()`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes_asyncio.client import Configuration

from substratus_controller.runtime.client import Client
from substratus_controller.runtime.clock import FakeClock
from substratus_controller.runtime.events import (
    EventRecorder,
    SpamFilter,
    TokenBucket,
    aggregation_key,
    build_core_event,
    build_event,
    event_namespace,
    object_reference,
    redact,
    spam_key,
    truncate_note,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def obj(name: str = "m1", namespace: str | None = "ns", uid: str = "u-1") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid, "resourceVersion": "7"}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "substratus.ai/v1", "kind": "Model", "metadata": meta, "spec": {}}


def recorder(clock: FakeClock, **options: Any) -> EventRecorder:
    cfg = Configuration()
    cfg.host = "https://127.0.0.1:1"
    return EventRecorder(Client(cfg), component="substratus.ai/test", instance="i-0", clock=clock, **options)


# ------------------------------------------------------------------------------------------------- redact
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "get https://storage.googleapis.com/b/o.tar?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Expires=300"
            "&X-Goog-Signature=0a1b2c3d failed",
            "get https://storage.googleapis.com/b/o.tar?REDACTED failed",
        ),
        (
            "PUT https://b.s3.us-east-1.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F"
            "&X-Amz-Security-Token=FQoG&X-Amz-Signature=deadbeef: 403.",
            "PUT https://b.s3.us-east-1.amazonaws.com/k?REDACTED: 403.",
        ),
        ("legacy https://s3.amazonaws.com/b/k?AWSAccessKeyId=A&Expires=1&Signature=abc%3D", None),
        ("azure https://a.blob.core.windows.net/c/b?sv=2020-08-04&se=2026&sig=ab%2Bcd", None),
        ("https://x.example/cb?code=1&token=s3cr3t", "https://x.example/cb?REDACTED"),
        ("https://x.example/cb?access_token=s3cr3t", "https://x.example/cb?REDACTED"),
        ("token=s3cr3t in the text", "token=REDACTED in the text"),
        ("postgres://u@db/x?sslmode=require&password=hunter2", "postgres://u@db/x?REDACTED"),
        ("sig=abc, Signature=def; X-Goog-Signature=012", "sig=REDACTED, Signature=REDACTED; X-Goog-Signature=REDACTED"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer REDACTED"),
        ("(see https://example.com/docs?page=2)", "(see https://example.com/docs?page=2)"),  # nothing secret
        ("image nvcr.io/nvidia/pytorch:23.10-py3 pulled", "image nvcr.io/nvidia/pytorch:23.10-py3 pulled"),
        ("design=a signal tokens: 3", "design=a signal tokens: 3"),
    ],
)
def test_redact(text: str, expected: str | None) -> None:
    out = redact(text)
    if expected is None:
        assert out.endswith("?REDACTED")
        assert "=" not in out.split("?")[-1]
    else:
        assert out == expected
    assert redact(out) == out  # idempotent


def test_redact_leaves_no_signature_anywhere() -> None:
    secret = "c2VjcmV0LXNpZ25hdHVyZQ"
    texts = [
        f"https://h/p?X-Goog-Signature={secret}",
        f"url=https://h/p?a=1&X-Amz-Signature={secret}, retrying",
        f'{{"url": "https://h/p?sig={secret}"}}',
        f"X-Goog-Signature={secret}",
        f"bearer {secret}",
    ]
    for text in texts:
        assert secret not in redact(text), text


# ------------------------------------------------------------------------------------------------- truncate
def test_truncate_note_bytes_and_characters() -> None:
    assert truncate_note("short") == "short"
    assert truncate_note("x" * 1024) == "x" * 1024
    cut = truncate_note("x" * 5000)
    assert len(cut.encode()) == 1024
    assert cut.endswith("...")
    cut = truncate_note("é" * 1000)  # 2 bytes each: never split one
    assert len(cut.encode()) <= 1024
    assert cut.endswith("...")
    assert set(cut[:-3]) == {"é"}


# ------------------------------------------------------------------------------------------------- keys, bodies
def test_object_reference() -> None:
    assert object_reference(obj()) == {
        "apiVersion": "substratus.ai/v1",
        "kind": "Model",
        "name": "m1",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "7",
    }
    assert "namespace" not in object_reference(obj(namespace=None))
    with pytest.raises(ValueError, match="apiVersion"):
        object_reference({"metadata": {"name": "x"}})


def test_keys() -> None:
    ref = object_reference(obj())
    assert spam_key("c", "i", ref) == spam_key("c", "i", {**ref, "resourceVersion": "8"})
    assert spam_key("c", "i", ref) != spam_key("c", "i", object_reference(obj(uid="u-2")))
    base = aggregation_key(ref, type="Normal", reason="R", action="A", note="n")
    assert base == aggregation_key({**ref, "resourceVersion": "8"}, type="Normal", reason="R", action="A", note="n")
    assert base != aggregation_key(ref, type="Normal", reason="R", action="A", note="other")
    assert base != aggregation_key(ref, type="Warning", reason="R", action="A", note="n")
    assert event_namespace(ref, core=False) == "ns"
    cluster = object_reference(obj(namespace=None))
    assert event_namespace(cluster, core=False) == "kube-system"
    assert event_namespace(cluster, core=True) == "default"


def test_bodies() -> None:
    ref = object_reference(obj())
    args: dict[str, Any] = {"name": "m1.1", "namespace": "ns", "ref": ref, "type": "Normal", "reason": "R",
                            "action": "A", "note": "n", "component": "c", "instance": "i"}  # fmt: skip
    one = build_event(**args, event_time=T0)
    assert one["eventTime"] == "2026-01-02T03:04:05.123456Z"
    assert "series" not in one
    assert one["regarding"] == ref
    assert one["reportingController"] == "c"
    assert one["note"] == "n"
    many = build_event(**args, event_time=T0, count=3, last_observed=T0.replace(second=9))
    assert many["series"] == {"count": 3, "lastObservedTime": "2026-01-02T03:04:09.123456Z"}
    core = build_core_event(**args, first_timestamp=T0, last_timestamp=T0, count=2)
    assert core["involvedObject"] == ref
    assert core["message"] == "n"
    assert core["count"] == 2
    assert core["source"] == {"component": "c"}
    assert core["firstTimestamp"] == "2026-01-02T03:04:05Z"


# ------------------------------------------------------------------------------------------------- rate limits
def test_token_bucket_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(burst=25, refill_interval=300.0, now=0.0)
    assert all(bucket.try_accept(0.0) for _ in range(25))
    assert not bucket.try_accept(0.0)
    assert not bucket.try_accept(299.0)
    assert bucket.try_accept(300.0)
    assert not bucket.try_accept(300.0)
    assert bucket.tokens(300.0 + 10 * 300.0) == pytest.approx(10.0)
    assert bucket.tokens(1e9) == 25.0  # capped at the burst
    assert sum(bucket.try_accept(1e9) for _ in range(30)) == 25


def test_spam_filter_is_per_key_and_bounded() -> None:
    clock = FakeClock()
    spam = SpamFilter(now=clock.now, burst=2, refill_interval=10.0, max_keys=2)
    assert spam.allow("a")
    assert spam.allow("a")
    assert not spam.allow("a")
    assert spam.allow("b")  # another object has its own bucket
    clock.step(10.0)
    assert spam.allow("a")
    assert not spam.allow("a")
    assert spam.allow("c")  # evicts the least recently used key ("b")
    assert spam.allow("b")
    assert spam.allow("b")


def test_recorder_drops_beyond_burst_and_refills_on_the_clock() -> None:
    clock = FakeClock()
    rec = recorder(clock)
    for i in range(30):
        rec.event(obj(), type="Warning", reason="Failed", message=f"attempt {i}")
    assert rec.stats.recorded == 25
    assert rec.stats.dropped_rate_limited == 5
    assert rec.pending() == 25
    rec.event(obj(name="m2", uid="u-2"), type="Normal", reason="Ready", message="ok")  # another object: allowed
    assert rec.stats.recorded == 26
    clock.step(300.0)
    rec.event(obj(), type="Warning", reason="Failed", message="attempt 30")
    rec.event(obj(), type="Warning", reason="Failed", message="attempt 31")
    assert rec.stats.recorded == 27
    assert rec.stats.dropped_rate_limited == 6


def test_recorder_coalesces_queued_repeats_and_bounds_the_queue() -> None:
    rec = recorder(FakeClock(), queue_size=2)
    for _ in range(4):
        rec.event(obj(), type="Normal", reason="Waiting", message="waiting")
    assert rec.pending() == 1
    assert rec.stats.recorded == 4
    rec.event(obj(), type="Normal", reason="Waiting", message="waiting longer")
    rec.event(obj(), type="Normal", reason="Waiting", message="dropped: the queue is full")
    assert rec.pending() == 2
    assert rec.stats.dropped_queue_full == 1
    rec.event(obj(), type="Normal", reason="Waiting", message="waiting")  # a repeat still coalesces
    assert rec.stats.recorded == 6
    assert rec.stats.dropped_queue_full == 1


def test_event_never_raises() -> None:
    rec = recorder(FakeClock())
    rec.event({"metadata": {"name": "no-kind"}}, type="Normal", reason="R", message="m")
    rec.event(obj(), type="Info", reason="R", message="m")  # type: ignore[arg-type]
    rec.event(obj(), type="Normal", reason="", message="m")
    rec.event(None, type="Normal", reason="R", message="m")  # type: ignore[arg-type]
    rec.event(obj(), type="Normal", reason="R", message=None)  # type: ignore[arg-type]
    assert rec.stats.dropped_invalid == 5
    assert rec.pending() == 0


def test_component_must_be_a_qualified_name() -> None:
    with pytest.raises(ValueError, match="qualified name"):
        EventRecorder(Client(Configuration()), component="not valid!")
    assert EventRecorder(Client(Configuration()), component="substratus-controller").instance
