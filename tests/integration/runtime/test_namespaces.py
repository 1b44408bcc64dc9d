"""Namespace scoping: a manager limited to some namespaces reconciles only there (one informer per namespace)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.runtime.manager import ManagerOptions
from substratus_controller.testing import ControlPlane
from tests.integration.runtime import toy
from tests.integration.runtime.test_toy_controller import eventually

pytestmark = pytest.mark.integration


async def test_only_the_watched_namespaces_are_reconciled(widgets_crd: ControlPlane) -> None:
    client = await Client.connect(widgets_crd.kubeconfig)
    watched = [f"ns-a-{uuid.uuid4().hex[:6]}", f"ns-b-{uuid.uuid4().hex[:6]}"]
    other = f"ns-c-{uuid.uuid4().hex[:6]}"
    for ns in (*watched, other):
        await client.create(k8s.NAMESPACES, {"metadata": {"name": ns}})
    manager = toy.build(client, ManagerOptions(metrics_address="0", probe_address="0", namespaces=watched))
    task = asyncio.create_task(manager.run())
    try:
        await asyncio.wait_for(manager.cache.wait_synced(), 20)
        widgets = manager.cache.informer(toy.WIDGETS)
        assert set(widgets.informers) == set(watched)
        for ns in (*watched, other):
            await client.create(toy.WIDGETS, toy.widget("w", ns))
        for ns in watched:
            await eventually(lambda ns=ns: client.get(k8s.CONFIGMAPS, "w-child", ns))  # type: ignore[misc]
        await asyncio.sleep(1)
        with pytest.raises(NotFound):
            await client.get(k8s.CONFIGMAPS, "w-child", other)
        assert widgets.get(other, "w") is None
        assert {o["metadata"]["namespace"] for o in widgets.list()} == set(watched)
        assert len(widgets.by_index("namespace", watched[1])) == 1
    finally:
        manager.stop()
        await asyncio.wait_for(task, 20)
        await client.close()
