"""The real-node tier: one whole system per session on a REAL node (kubelet, scheduler, containerd and the
project's reference images: testing/realnode.py), with the controller started through its CLI.

Every test here is marked `realnode` (`pytest -m realnode` runs the tier, `-m "not realnode"` the fast
one). The tier needs root; without it, or without the provisioned binaries and images, the session fails
with the command that fixes it (nothing is skipped). The node is stopped by pid, and everything it created
removed, when the session ends, also after a failure.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from e2e.conftest import eventually
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.testing.controlplane import kubectl_clients
from substratus_controller.testing.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
SEEN_TOKENS: list[str] = []  # notebook tokens the tests saw in use (test_zz_logs.py looks for them in the logs)
GPU_TYPES = "nvidia-t4"  # what LOCAL_GPU_TYPES tells the controller the node has (it has no GPU at all)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
async def real_stack() -> AsyncIterator[Stack]:
    s = Stack(node="real", controller_env={"LOCAL_GPU_TYPES": GPU_TYPES}, log=print)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(scope="session")
async def real_client(real_stack: Stack) -> Client:
    assert real_stack.client is not None
    return real_stack.client


@contextlib.asynccontextmanager
async def namespace_for(client: Client, prefix: str = "real") -> AsyncIterator[str]:
    """A fresh namespace, deleted afterwards, waiting until it (and so its pods) is gone: the node has two
    CPUs, and the next test needs them."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await client.create(k8s.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await eventually(lambda: client.get(k8s.SERVICEACCOUNTS, "default", name), timeout=30)
    try:
        yield name
    finally:
        await client.delete(k8s.NAMESPACES, name)

        async def gone() -> bool:
            try:
                await client.get(k8s.NAMESPACES, name)
            except NotFound:
                return True
            return False

        await eventually(gone, timeout=120, interval=0.5)


@pytest.fixture
async def real_namespace(real_client: Client) -> AsyncIterator[str]:
    async with namespace_for(real_client) as name:
        yield name


def kubectl_binaries() -> dict[str, str]:
    """The two kubectl clients the plugins are tested with (testing.controlplane.kubectl_clients)."""
    return {version: str(path) for version, path in kubectl_clients().items()}
