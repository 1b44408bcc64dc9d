"""The EventRecorder against the real API server: events.k8s.io/v1 Events, aggregation into a series,
the spam filter, redaction, the core/v1 fallback, cluster-scoped objects and the queue bound."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from substratus_controller.runtime import resources
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.events import EventRecorder
from substratus_controller.runtime.resource import Resource
from substratus_controller.testing import ControlPlane

pytestmark = pytest.mark.integration

COMPONENT = "substratus.ai/test-controller"
SIGNED_URL = (
    "https://storage.googleapis.com/bucket/model.tar?X-Goog-Algorithm=GOOG4-RSA-SHA256"
    "&X-Goog-Credential=sa%40p.iam.gserviceaccount.com%2F20260101%2Fauto%2Fstorage%2Fgoog4_request"
    "&X-Goog-Expires=300&X-Goog-SignedHeaders=host&X-Goog-Signature=5ec2e7a0d1b4c3f2e1d0"
)


@pytest.fixture
async def client(control_plane: ControlPlane) -> AsyncIterator[Client]:
    c = await Client.connect(control_plane.kubeconfig, timeout=10)
    yield c
    await c.close()


@pytest.fixture
def recorders(client: Client) -> Iterator[list[tuple[EventRecorder, asyncio.Task[Any]]]]:
    made: list[tuple[EventRecorder, asyncio.Task[Any]]] = []
    yield made
    for _, task in made:
        task.cancel()


@pytest.fixture
def start(client: Client, recorders: list[tuple[EventRecorder, asyncio.Task[Any]]]) -> Any:
    def _start(**options: Any) -> EventRecorder:
        recorder = EventRecorder(client, component=COMPONENT, instance="test-0", **options)
        recorders.append((recorder, asyncio.create_task(recorder.run())))
        return recorder

    return _start


def configmap(cp: ControlPlane, namespace: str, name: str | None = None) -> dict[str, Any]:
    body = {"metadata": {"name": name or f"cm-{uuid.uuid4().hex[:6]}"}, "data": {"k": "v"}}
    obj: dict[str, Any] = cp.request(f"/api/v1/namespaces/{namespace}/configmaps", method="POST", body=body)
    return obj


async def events_v1(client: Client, namespace: str) -> list[dict[str, Any]]:
    items, _ = await client.list_all(resources.EVENTS, namespace)
    return [e for e in items if e.get("reportingController") == COMPONENT]


async def events_core(client: Client, namespace: str) -> list[dict[str, Any]]:
    items, _ = await client.list_all(resources.EVENTS_CORE, namespace)
    return [e for e in items if e.get("source", {}).get("component") == COMPONENT]


async def test_event_is_created_with_reference_reason_note_and_type(
    control_plane: ControlPlane, client: Client, namespace: str, start: Any
) -> None:
    recorder = start()
    cm = configmap(control_plane, namespace)
    recorder.event(cm, type="Warning", reason="UploadFailed", message=f"could not fetch {SIGNED_URL}: 403")
    assert await recorder.flush(10)
    [event] = await events_v1(client, namespace)
    assert event["regarding"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": cm["metadata"]["name"],
        "namespace": namespace,
        "uid": cm["metadata"]["uid"],
        "resourceVersion": cm["metadata"]["resourceVersion"],
    }
    assert event["type"] == "Warning"
    assert event["reason"] == "UploadFailed"
    assert event["action"] == "UploadFailed"  # defaults to the reason
    assert event["reportingController"] == COMPONENT
    assert event["reportingInstance"] == "test-0"
    assert event["note"] == "could not fetch https://storage.googleapis.com/bucket/model.tar?REDACTED: 403"
    assert "5ec2e7a0" not in str(event)
    assert event["metadata"]["name"].startswith(cm["metadata"]["name"] + ".")
    assert event["eventTime"].endswith("Z")
    assert len(event["eventTime"]) == len("2026-01-02T03:04:05.123456Z")
    assert "series" not in event
    assert recorder.stats.created == 1
    assert recorder.stats.patched == 0


async def test_identical_events_aggregate_into_one_series(
    control_plane: ControlPlane, client: Client, namespace: str, start: Any
) -> None:
    recorder = start()
    cm = configmap(control_plane, namespace)
    recorder.event(cm, type="Normal", reason="Waiting", message="waiting for the dataset")
    assert await recorder.flush(10)
    for _ in range(3):  # sent one by one: three PATCHes of the same Event
        recorder.event(cm, type="Normal", reason="Waiting", message="waiting for the dataset")
        assert await recorder.flush(10)
    for _ in range(5):  # queued together: coalesced into one PATCH
        recorder.event(cm, type="Normal", reason="Waiting", message="waiting for the dataset")
    assert await recorder.flush(10)
    recorder.event(cm, type="Normal", reason="Waiting", message="waiting for the model")  # a different message
    assert await recorder.flush(10)

    events = await events_v1(client, namespace)
    assert len(events) == 2
    [series] = [e for e in events if e["note"] == "waiting for the dataset"]
    assert series["series"]["count"] == 9
    assert series["series"]["lastObservedTime"] >= series["eventTime"]
    [single] = [e for e in events if e["note"] == "waiting for the model"]
    assert "series" not in single
    assert recorder.stats.created == 2
    assert recorder.stats.patched == 4
    assert recorder.stats.recorded == 10


async def test_spam_filter_drops_events_beyond_the_burst(
    control_plane: ControlPlane, client: Client, namespace: str, start: Any
) -> None:
    recorder = start()
    noisy, quiet = configmap(control_plane, namespace), configmap(control_plane, namespace)
    for i in range(30):
        recorder.event(noisy, type="Warning", reason="Failed", message=f"attempt {i} failed")
    recorder.event(quiet, type="Normal", reason="Ready", message="ready")
    assert await recorder.flush(20)
    events = await events_v1(client, namespace)
    noisy_notes = sorted(e["note"] for e in events if e["regarding"]["uid"] == noisy["metadata"]["uid"])
    assert noisy_notes == sorted(f"attempt {i} failed" for i in range(25))  # the first 25 only
    assert [e["reason"] for e in events if e["regarding"]["uid"] == quiet["metadata"]["uid"]] == ["Ready"]
    assert recorder.stats.dropped_rate_limited == 5
    assert recorder.stats.created == 26


async def test_falls_back_to_core_events_when_events_api_is_not_served(
    control_plane: ControlPlane, client: Client, namespace: str, start: Any
) -> None:
    unserved = Resource("events.k8s.io", "v1alpha0", "events", "Event")  # 404 on discovery, like a pre-1.19 server
    recorder = start(events_resource=unserved)
    cm = configmap(control_plane, namespace)
    for _ in range(3):
        recorder.event(cm, type="Warning", reason="Invalid", message="token=abc123 is not valid")
        assert await recorder.flush(10)
    [event] = await events_core(client, namespace)
    assert event["involvedObject"]["uid"] == cm["metadata"]["uid"]
    assert event["involvedObject"]["kind"] == "ConfigMap"
    assert event["reason"] == "Invalid"
    assert event["type"] == "Warning"
    assert event["message"] == "token=REDACTED is not valid"
    assert event["source"] == {"component": COMPONENT}
    assert event["count"] == 3
    assert event["lastTimestamp"] >= event["firstTimestamp"]
    assert event["eventTime"] is None  # written through core/v1, not events.k8s.io/v1
    assert recorder.stats.created == 1
    assert recorder.stats.patched == 2


async def test_core_events_can_be_forced(
    control_plane: ControlPlane, client: Client, namespace: str, start: Any
) -> None:
    recorder = start(api="v1")
    cm = configmap(control_plane, namespace)
    recorder.event(cm, type="Normal", reason="Created", message="created", action="Create")
    assert await recorder.flush(10)
    [event] = await events_core(client, namespace)
    assert event["count"] == 1
    assert event["action"] == "Create"
    assert event["reportingComponent"] == COMPONENT


@pytest.mark.parametrize("api", ["events.k8s.io/v1", "v1"])
async def test_events_about_cluster_scoped_objects(
    control_plane: ControlPlane, client: Client, namespace: str, start: Any, api: str
) -> None:
    recorder = start(api=api)
    ns_obj = {"apiVersion": "v1", "kind": "Namespace", **control_plane.request(f"/api/v1/namespaces/{namespace}")}
    reason = f"Probe{uuid.uuid4().hex[:6]}"
    recorder.event(ns_obj, type="Normal", reason=reason, message="cluster-scoped")
    assert await recorder.flush(10)
    assert recorder.stats.created == 1, recorder.stats
    where = "kube-system" if api == "events.k8s.io/v1" else "default"
    items, _ = await client.list_all(resources.EVENTS_CORE, where)
    [event] = [e for e in items if e["reason"] == reason]
    with contextlib.suppress(Exception):
        await client.delete(resources.EVENTS_CORE, event["metadata"]["name"], where)


async def test_queue_bound_drops_the_newest_and_flush_reports_timeouts(
    control_plane: ControlPlane, client: Client, namespace: str, recorders: list[tuple[EventRecorder, Any]]
) -> None:
    recorder = EventRecorder(client, component=COMPONENT, queue_size=3)
    objs = [configmap(control_plane, namespace, f"q{i}") for i in range(5)]
    for obj in objs:
        recorder.event(obj, type="Normal", reason="Queued", message="queued")
    recorder.event(objs[0], type="Normal", reason="Queued", message="queued")  # a repeat takes no room
    assert recorder.pending() == 3
    assert recorder.stats.dropped_queue_full == 2
    assert not await recorder.flush(0.2)  # nothing sends yet
    recorders.append((recorder, asyncio.create_task(recorder.run())))
    assert await recorder.flush(10)
    events = await events_v1(client, namespace)
    assert sorted(e["regarding"]["name"] for e in events) == ["q0", "q1", "q2"]
    [q0] = [e for e in events if e["regarding"]["name"] == "q0"]
    assert q0["series"]["count"] == 2  # created with the coalesced count


async def test_refused_events_are_dropped_without_retrying(client: Client, start: Any) -> None:
    recorder = start()
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "no-such-namespace"}}
    recorder.event(ghost, type="Normal", reason="Nowhere", message="the namespace does not exist")
    assert await recorder.flush(5)
    assert recorder.stats.dropped_failed == 1
    assert recorder.stats.created == 0
