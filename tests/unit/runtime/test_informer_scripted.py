"""The informer against a scripted LIST/WATCH stream: every event type, 410 relists, idle and failing watches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from substratus_controller.runtime.backoff import Backoff
from substratus_controller.runtime.clock import FakeClock
from substratus_controller.runtime.errors import ServerError, WatchIdle
from substratus_controller.runtime.informer import FuncHandler, Informer
from substratus_controller.runtime.metrics import RuntimeMetrics
from substratus_controller.runtime.resource import Resource
from substratus_controller.runtime.store import projection
from substratus_controller.runtime.watchstream import WatchEvent

RES = Resource("example.com", "v1", "widgets", "Widget")


def obj(name: str, rv: int, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv), "managedFields": [{"m": 1}]},
        **extra,
    }


def listing(rv: int, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": str(rv)}, "items": list(items)}


class ScriptedClient:
    """Hands out scripted LIST pages and WATCH streams; records what each watch asked for."""

    def __init__(self, lists: list[dict[str, Any]], watches: list[list[WatchEvent | Exception]]) -> None:
        self.metrics = RuntimeMetrics()
        self.lists = lists
        self.watches = watches
        self.watch_calls: list[dict[str, Any]] = []
        self.list_calls = 0
        self.idle = asyncio.Event()  # set when the script is exhausted and the informer waits

    async def list(self, resource: Resource, namespace: str | None = None, **kw: Any) -> dict[str, Any]:
        self.list_calls += 1
        return self.lists.pop(0)

    async def watch(self, resource: Resource, namespace: str | None = None, **kw: Any) -> AsyncIterator[WatchEvent]:
        self.watch_calls.append(kw)
        if not self.watches:
            self.idle.set()
            await asyncio.Event().wait()
        for item in self.watches.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def handler(self) -> FuncHandler:
        return FuncHandler(
            add=lambda o: self.events.append(("add", o["metadata"]["name"], o["metadata"]["resourceVersion"])),
            update=lambda a, b: self.events.append(("update", b["metadata"]["name"], b["metadata"]["resourceVersion"])),
            delete=lambda o: self.events.append(("delete", o["metadata"]["name"], o["metadata"]["resourceVersion"])),
        )


async def run_until_idle(informer: Informer, client: ScriptedClient) -> asyncio.Task[None]:
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(client.idle.wait(), 5)
    return task


def fast_backoff() -> Backoff:
    return Backoff(initial=0.001, maximum=0.002, jitter=0)


async def test_list_then_watch_every_event_type() -> None:
    client = ScriptedClient(
        lists=[listing(10, obj("a", 5), obj("b", 6))],
        watches=[
            [
                WatchEvent("ADDED", obj("c", 11)),
                WatchEvent("MODIFIED", obj("a", 12)),
                WatchEvent("DELETED", obj("b", 13)),
                WatchEvent("BOOKMARK", {"kind": "Widget", "metadata": {"resourceVersion": "20"}}),
            ]
        ],
    )
    informer = Informer(client, RES, namespace="ns", backoff=fast_backoff())  # type: ignore[arg-type]
    rec = Recorder()
    informer.add_handler(rec.handler())
    task = await run_until_idle(informer, client)
    try:
        assert informer.has_synced()
        assert rec.events == [
            ("add", "a", "5"),
            ("add", "b", "6"),
            ("add", "c", "11"),
            ("update", "a", "12"),
            ("delete", "b", "13"),
        ]
        assert sorted(informer.store.keys()) == ["ns/a", "ns/c"]
        # The first watch resumed from the LIST's RV; the next one from the BOOKMARK's.
        assert [c["resource_version"] for c in client.watch_calls] == ["10", "20"]
        assert informer.resource_version == "20"
        assert all("managedFields" not in o["metadata"] for o in informer.store)
        timeout = client.watch_calls[0]["timeout_seconds"]
        assert 300 <= timeout < 600
    finally:
        task.cancel()


async def test_410_relists_and_emits_synthetic_deletes() -> None:
    client = ScriptedClient(
        lists=[
            listing(10, obj("a", 5), obj("b", 6), obj("c", 7)),
            listing(50, obj("a", 40), obj("c", 7), obj("d", 45)),
        ],
        watches=[[WatchEvent("ERROR", {"kind": "Status", "code": 410, "message": "too old resource version"})]],
    )
    informer = Informer(client, RES, namespace="ns", backoff=fast_backoff())  # type: ignore[arg-type]
    rec = Recorder()
    informer.add_handler(rec.handler())
    task = await run_until_idle(informer, client)
    try:
        assert client.list_calls == 2
        after_relist = rec.events[3:]
        assert ("delete", "b", "6") in after_relist
        assert ("update", "a", "40") in after_relist
        assert ("add", "d", "45") in after_relist
        assert not any(e[1] == "c" for e in after_relist), "unchanged objects emit nothing on relist"
        assert sorted(informer.store.keys()) == ["ns/a", "ns/c", "ns/d"]
        assert client.watch_calls[-1]["resource_version"] == "50"
        assert (
            client.metrics.registry.get_sample_value("informer_relists_total", {"resource": "widgets.example.com@ns"})
            == 2
        )
    finally:
        task.cancel()


async def test_idle_watch_is_rewatched_from_the_same_resource_version() -> None:
    client = ScriptedClient(
        lists=[listing(10, obj("a", 5))],
        watches=[[WatchEvent("MODIFIED", obj("a", 11)), WatchIdle("no data")], []],
    )
    informer = Informer(client, RES, namespace="ns", idle_timeout=1, backoff=fast_backoff())  # type: ignore[arg-type]
    task = await run_until_idle(informer, client)
    try:
        assert client.list_calls == 1, "a frozen watch is re-watched, not relisted"
        assert [c["resource_version"] for c in client.watch_calls] == ["10", "11", "11"]
        assert client.watch_calls[0]["idle_timeout"] == 1
        labels = {"resource": "widgets.example.com@ns", "reason": "idle"}
        assert client.metrics.registry.get_sample_value("informer_watch_restarts_total", labels) == 1
    finally:
        task.cancel()


async def test_failing_watch_backs_off_and_retries() -> None:
    delays: list[float] = []

    class CountingBackoff(Backoff):
        def next(self) -> float:
            delays.append(super().next())
            return 0.001

    client = ScriptedClient(
        lists=[listing(10)],
        watches=[[ServerError("boom", code=500)], [ServerError("boom", code=503)], [WatchEvent("ADDED", obj("z", 12))]],
    )
    informer = Informer(client, RES, namespace="ns", backoff=CountingBackoff(jitter=0))  # type: ignore[arg-type]
    task = await run_until_idle(informer, client)
    try:
        assert delays == [0.8, 1.6], "exponential from 0.8 s"
        assert "ns/z" in informer.store
    finally:
        task.cancel()


async def test_handler_failure_does_not_stop_the_informer_and_late_handlers_get_adds() -> None:
    client = ScriptedClient(lists=[listing(10, obj("a", 5))], watches=[[WatchEvent("ADDED", obj("b", 11))]])
    informer = Informer(client, RES, namespace="ns", backoff=fast_backoff())  # type: ignore[arg-type]

    def boom(_: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(FuncHandler(add=boom))
    rec = Recorder()
    informer.add_handler(rec.handler())
    task = await run_until_idle(informer, client)
    try:
        assert [e[1] for e in rec.events] == ["a", "b"]
        late = Recorder()
        informer.add_handler(late.handler())
        assert sorted(e[1] for e in late.events) == ["a", "b"]
    finally:
        task.cancel()


async def test_projection_keeps_only_what_readers_need() -> None:
    big = obj("a", 5, spec={"template": {"big": "x" * 1000}, "replicas": 2}, status={"ready": True})
    client = ScriptedClient(lists=[listing(10, big)], watches=[])
    informer = Informer(client, RES, namespace="ns", transform=projection("metadata", "status", "spec.replicas"))  # type: ignore[arg-type]
    task = await run_until_idle(informer, client)
    try:
        stored = informer.store.get("ns/a")
        assert stored is not None
        assert stored["spec"] == {"replicas": 2}
        assert stored["status"] == {"ready": True}
        assert "managedFields" not in stored["metadata"]
    finally:
        task.cancel()


async def test_rerun_resumes_the_watch_without_relisting() -> None:
    client = ScriptedClient(lists=[listing(10, obj("a", 5))], watches=[[WatchEvent("ADDED", obj("b", 11))]])
    informer = Informer(client, RES, namespace="ns", backoff=fast_backoff())  # type: ignore[arg-type]
    task = await run_until_idle(informer, client)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    client.idle.clear()
    client.watches.append([WatchEvent("ADDED", obj("c", 12))])
    task = await run_until_idle(informer, client)
    try:
        assert client.list_calls == 1
        assert client.watch_calls[-2]["resource_version"] == "11"
        assert "ns/c" in informer.store
    finally:
        task.cancel()


async def test_resync_runs_on_the_injected_clock() -> None:
    """The resync period is measured on the informer's Clock: nothing before it, every object once at it."""
    clock = FakeClock()
    client = ScriptedClient(lists=[listing(10, obj("a", 5), obj("b", 6))], watches=[])
    informer = Informer(client, RES, namespace="ns", backoff=fast_backoff(), resync_period=60, clock=clock)  # type: ignore[arg-type]
    rec = Recorder()
    informer.add_handler(rec.handler())
    task = await run_until_idle(informer, client)
    try:
        for _ in range(50):  # let the resync loop start sleeping on the clock
            if clock.has_waiters():
                break
            await asyncio.sleep(0)
        assert clock.has_waiters()
        clock.step(59.9)
        await asyncio.sleep(0)
        assert [e for e in rec.events if e[0] == "update"] == []
        clock.step(0.1)
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted(e for e in rec.events if e[0] == "update") == [("update", "a", "5"), ("update", "b", "6")]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
