"""The pod tracker's decisions: which pod is current and Ready, and when a pod counts as gone."""

from __future__ import annotations

import asyncio
from typing import Any

from substratus_controller.plugins.podtracker import PodTracker, either, follow_pod


def pod(uid: str, *, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "nb-notebook", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T10:00:00Z"
    conds = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": meta, "status": {"phase": "Running", "conditions": conds, "startTime": "2026-12-01T09:00:00Z"}}


def tracker() -> PodTracker:
    return PodTracker(client=None, namespace="ns", name="nb-notebook", report=lambda _m: None)  # type: ignore[arg-type]


def test_replacement_deletion_and_readiness() -> None:
    t = tracker()
    t.observe(pod("a", ready=False))
    assert t.ready_uid is None
    t.observe(pod("a"))
    assert t.ready_uid == "a"
    assert t.started_at == 1796115600.0
    gone_a = t.gone("a")
    t.observe(pod("a", ready=False))  # not ready for a moment: the same pod, nothing to restart
    assert not gone_a.is_set()
    t.observe(pod("a", deleting=True))
    assert gone_a.is_set()
    assert t.ready_uid is None
    t.observe(None)
    t.observe(pod("b"))
    assert t.ready_uid == "b"
    assert not t.gone("b").is_set()
    t.observe(pod("c"))  # replaced without us seeing it go
    assert t.gone("b").is_set()


async def test_follow_pod_restarts_the_child_for_the_next_pod() -> None:
    t = tracker()
    stop = asyncio.Event()
    runs: list[str | None] = []
    replaced: list[bool] = []

    async def child(child_stop: asyncio.Event) -> None:
        runs.append(t.ready_uid)
        await child_stop.wait()

    task = asyncio.create_task(follow_pod(t, stop, child, on_replaced=lambda: replaced.append(True)))
    t.observe(pod("a"))
    await asyncio.sleep(0.05)
    t.observe(pod("a", deleting=True))
    await asyncio.sleep(0.05)
    assert runs == ["a"]  # no child while there is no Ready pod
    t.observe(pod("b"))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert runs == ["a", "b"]
    assert replaced == [True]


async def test_either_is_set_by_any() -> None:
    a, b = asyncio.Event(), asyncio.Event()
    async with either(a, b) as both:
        assert not both.is_set()
        b.set()
        await asyncio.wait_for(both.wait(), 1)
