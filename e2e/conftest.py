"""e2e fixtures: one whole system per session (control plane + KCM, CRDs, simulated kubelet, controller process).

The controller runs as its own process through its CLI, with the local cloud driver; it is told that the
local nodes have only `nvidia-t4` GPUs (LOCAL_GPU_TYPES) so that other types report UnsupportedGPU, and
isolates notebooks (NOTEBOOK_NETWORK_POLICY=deny-ingress). The
simulated kubelet fails pods whose image contains "fail" and the builder pods of objects labelled
`substratus.ai/<kind>: bad-build`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from substratus_controller.constants import Kind
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.testing.kubelet import Rule
from substratus_controller.testing.stack import Stack

RULES = [
    Rule("fail", image="fail"),
    *(Rule("fail", labels={f"substratus.ai/{k.singular}": "bad-build", "role": "build"}) for k in Kind),
]


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    env = {"LOCAL_GPU_TYPES": "nvidia-t4", "NOTEBOOK_NETWORK_POLICY": "deny-ingress"}
    s = Stack(kubelet_rules=RULES, controller_env=env)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(scope="session")
async def client(stack: Stack) -> Client:
    assert stack.client is not None
    return stack.client


@pytest.fixture
async def namespace(client: Client) -> str:
    """A fresh namespace per test (kept afterwards: the last test restarts the controller over all of them)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await client.create(k8s.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # ServiceAccount admission needs the namespace's default SA before any pod (KCM creates it).
    await eventually(lambda: client.get(k8s.SERVICEACCOUNTS, "default", name), timeout=30)
    return name


def manifest(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """A substratus.ai/v1 object of `kind` named `name` (metadata fields in `meta`)."""
    return {"apiVersion": "substratus.ai/v1", "kind": kind, "metadata": {"name": name, **meta}, "spec": spec}


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll until `check` returns something truthy without raising NotFound/AssertionError; return it."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
        except (NotFound, AssertionError) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout:g}s (last: {last!r})")


async def get(client: Client, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
    return await client.get(RESOURCE_OF[kind], name, namespace)


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c["type"] == ctype:
            return dict(c)
    return {}


async def wait_condition(client: Client, kind: Kind, namespace: str, name: str, ctype: str, status: str, *,
                         reason: str | None = None, timeout: float = 60.0) -> dict[str, Any]:  # fmt: skip
    async def check() -> dict[str, Any] | None:
        obj = await get(client, kind, namespace, name)
        c = condition(obj, ctype)
        if c.get("status") == status and (reason is None or c.get("reason") == reason):
            return obj
        return None

    try:
        result: dict[str, Any] = await eventually(check, timeout)
    except AssertionError:
        obj = await get(client, kind, namespace, name)
        raise AssertionError(
            f"{kind.value} {name}: {ctype} not {status}/{reason}: {json.dumps(obj.get('status'), indent=1)}"
        ) from None
    return result


async def resource_versions(client: Client, namespace: str) -> dict[str, str]:
    """`<plural>/<name>` -> resourceVersion of the four kinds and every child kind in `namespace`."""
    out = {}
    for res in (*RESOURCE_OF.values(), k8s.JOBS, k8s.CONFIGMAPS, k8s.SERVICES, k8s.DEPLOYMENTS, k8s.SERVICEACCOUNTS,
                k8s.PODS):  # fmt: skip
        for item in (await client.list(res, namespace))["items"]:
            out[f"{res.plural}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


def metric_sum(metrics: str, prefix: str, *methods: str) -> float:
    """The sum of the samples starting with `prefix` (and, if given, with one of these `method` labels)."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(prefix) and (not methods or any(f'method="{m}"' in line for m in methods)):
            total += float(line.rsplit(" ", 1)[1])
    return total


WRITES = ("POST", "PUT", "PATCH", "DELETE")


async def events_for(client: Client, namespace: str, name: str) -> list[dict[str, Any]]:
    items = (await client.list(k8s.EVENTS, namespace))["items"]
    return [e for e in items if (e.get("regarding") or {}).get("name") == name]
