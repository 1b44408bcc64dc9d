"""A toy controller on the real API server: creates, updates, deletes, owned-child changes, metrics, probes."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from substratus_controller.runtime import resources
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.controller import Request
from substratus_controller.runtime.errors import NotFound
from substratus_controller.runtime.manager import Manager, ManagerOptions
from substratus_controller.testing import ControlPlane
from tests.integration.runtime import toy

pytestmark = pytest.mark.integration


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns a truthy value without raising; return that value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
        except (AssertionError, NotFound) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {last!r}")


@pytest.fixture
async def running(widgets_crd: ControlPlane) -> AsyncIterator[tuple[Client, Manager]]:
    client = await Client.connect(widgets_crd.kubeconfig)
    manager = toy.build(client, ManagerOptions(metrics_address="127.0.0.1:0", probe_address="127.0.0.1:0"))
    task = asyncio.create_task(manager.run())
    await asyncio.wait_for(manager.cache.wait_synced(), 20)
    toy.WRITES.clear()
    yield client, manager
    manager.stop()
    await asyncio.wait_for(task, 20)
    await client.close()


async def child(client: Client, ns: str, name: str) -> dict[str, Any]:
    return await client.get(resources.CONFIGMAPS, f"{name}-child", ns)


async def test_create_update_delete_and_owned_child(running: tuple[Client, Manager], namespace: str) -> None:
    client, manager = running
    await client.create(toy.WIDGETS, toy.widget("w1", namespace, data="one", size=1))

    async def reconciled_child() -> bool:
        cm = await child(client, namespace, "w1")
        w = await client.get(toy.WIDGETS, "w1", namespace)
        return cm["data"] == {"data": "one", "size": "1"} and w.get("status", {}).get("observedGeneration") == 1

    await eventually(reconciled_child)
    owner = (await child(client, namespace, "w1"))["metadata"]["ownerReferences"][0]
    assert owner["controller"] is True
    assert owner["kind"] == "Widget"

    # Update: the spec change reaches the child.
    await client.patch(toy.WIDGETS, "w1", {"spec": {"data": "two"}}, namespace)

    async def updated() -> bool:
        return (await child(client, namespace, "w1"))["data"]["data"] == "two"

    await eventually(updated)

    # An owned child changed behind our back is put back (the owner is reconciled on child events).
    await client.patch(resources.CONFIGMAPS, "w1-child", {"data": {"data": "tampered"}}, namespace)
    await eventually(updated)

    # ... and a deleted child is recreated.
    await client.delete(resources.CONFIGMAPS, "w1-child", namespace)
    await eventually(updated)

    # Deleting the parent: the garbage collector removes the child; the reconcile of a gone key is a no-op.
    errors_before = manager.metrics.registry.get_sample_value(
        "controller_runtime_reconcile_errors_total", {"controller": "widget"}
    )
    await client.delete(toy.WIDGETS, "w1", namespace)

    async def child_gone() -> bool:
        try:
            await child(client, namespace, "w1")
        except NotFound:
            return True
        return False

    # The garbage collector learns about CRDs created after it started on its 30 s discovery resync.
    await eventually(child_gone, timeout=75)
    errors_after = manager.metrics.registry.get_sample_value(
        "controller_runtime_reconcile_errors_total", {"controller": "widget"}
    )
    assert errors_after == errors_before


async def test_no_op_reconciles_write_nothing(running: tuple[Client, Manager], namespace: str) -> None:
    client, manager = running
    for i in range(5):
        await client.create(toy.WIDGETS, toy.widget(f"n{i}", namespace))

    async def all_done() -> bool:
        items = (await client.list(toy.WIDGETS, namespace))["items"]
        return len(items) == 5 and all(w.get("status", {}).get("observedGeneration") == 1 for w in items)

    await eventually(all_done)
    await asyncio.sleep(0.5)

    def writes_here() -> int:
        return sum(n for (ns, _), n in toy.WRITES.items() if ns == namespace)

    writes = writes_here()
    assert writes == 10, toy.WRITES  # one child + one status per widget, nothing more
    rvs = {
        w["metadata"]["name"]: w["metadata"]["resourceVersion"]
        for w in (await client.list(toy.WIDGETS, namespace))["items"]
    }
    controller = manager.controllers[0]
    reconciles = manager.metrics.registry.get_sample_value(
        "controller_runtime_reconcile_total", {"controller": "widget", "result": "success"}
    )
    for i in range(5):
        controller.queue.add(Request(namespace, f"n{i}"))  # a resync of every Ready object

    async def resynced() -> bool:
        now = manager.metrics.registry.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": "widget", "result": "success"}
        )
        return bool(now and reconciles and now >= reconciles + 5)

    await eventually(resynced)
    assert writes_here() == writes
    again = {
        w["metadata"]["name"]: w["metadata"]["resourceVersion"]
        for w in (await client.list(toy.WIDGETS, namespace))["items"]
    }
    assert again == rvs


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_metrics_and_probes(running: tuple[Client, Manager], namespace: str) -> None:
    client, manager = running
    await client.create(toy.WIDGETS, toy.widget("m1", namespace))
    await eventually(lambda: child(client, namespace, "m1"))
    host, port = manager.servers.bound["/metrics"]
    status, body = await asyncio.to_thread(_get, f"http://{host}:{port}/metrics")
    assert status == 200
    for name in (
        'controller_runtime_reconcile_total{controller="widget",result="success"}',
        "controller_runtime_reconcile_time_seconds_bucket",
        'controller_runtime_max_concurrent_reconciles{controller="widget"} 2.0',
        "controller_runtime_active_workers",
        'workqueue_adds_total{name="widget"}',
        'workqueue_depth{name="widget"}',
        "workqueue_queue_duration_seconds_bucket",
        "workqueue_work_duration_seconds_bucket",
        "workqueue_retries_total",
        "workqueue_unfinished_work_seconds",
        "workqueue_longest_running_processor_seconds",
        "rest_client_request_duration_seconds_bucket",
    ):
        assert name in body, name
    rest = [line for line in body.splitlines() if line.startswith("rest_client_requests_total{")]
    assert any('code="201"' in line and 'method="PATCH"' in line for line in rest), rest  # the child's creation
    host, port = manager.servers.bound["/healthz"]
    assert await asyncio.to_thread(_get, f"http://{host}:{port}/healthz") == (200, "ok")
    assert await asyncio.to_thread(_get, f"http://{host}:{port}/readyz") == (200, "ok")
