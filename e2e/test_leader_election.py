"""Leader election with the real controller (issue 15 §9), fast tier: `substratus-controller run --leader-elect`
as separate processes on a real control plane of this module's own (no other controller runs there), each
watching and electing in the test's namespace.

- kill -9 of the leader: the standby reconciles within 17 s (a 15 s lease, then its 2 s retry);
- SIGTERM: the leader releases the Lease on its way out and the standby leads within 3 s;
- a leader that cannot renew (the Lease taken by someone else) stops: its process exits non-zero within
  the renew deadline and its retry, so it writes nothing more.

Who leads is read from each process's leader_election_master_status; "reconciled" means a new Model got
status.conditions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import RULES, eventually, manifest
from substratus_controller.constants import Kind
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.testing.stack import ControllerProcess, Stack

pytestmark = pytest.mark.e2e
LEASE = "df3bdd2d.substratus.ai"


@pytest.fixture(scope="module")
async def le_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    stack = Stack(kubelet_rules=RULES, workdir=tmp_path_factory.mktemp("leader"))
    await stack.start(with_controller=False)
    yield stack
    await stack.stop()


@pytest.fixture
async def le(le_stack: Stack) -> tuple[Stack, Client, str]:
    client = le_stack.client
    assert client is not None
    ns = f"le-{uuid.uuid4().hex[:6]}"
    await client.create(k8s.NAMESPACES, {"metadata": {"name": ns}})
    return le_stack, client, ns


def leads(proc: ControllerProcess) -> bool:
    try:
        text = proc.metrics()
    except OSError:
        return False
    return any(
        line.startswith("leader_election_master_status{") and line.endswith(" 1.0") for line in text.splitlines()
    )


async def start(stack: Stack, namespace: str, log: Path) -> ControllerProcess:
    assert stack.cp is not None
    proc = ControllerProcess(stack.cp.kubeconfig, log=log, args=[
        f"--namespace={namespace}", "--leader-elect", f"--leader-election-namespace={namespace}",
        f"--artifact-bucket-url=file://{stack.workdir / 'artifacts'}"])  # fmt: skip
    await proc.start()
    return proc


async def reconciled(client: Client, namespace: str, name: str) -> bool:
    obj = await client.get(RESOURCE_OF[Kind.MODEL], name, namespace)
    return bool((obj.get("status") or {}).get("conditions"))


async def model(client: Client, namespace: str, name: str) -> dict[str, Any]:
    body = manifest("Model", name, {"image": "example.com/m:1"}, namespace=namespace)
    return await client.create(RESOURCE_OF[Kind.MODEL], body)


async def test_kill_9_of_the_leader_then_sigterm_hand_over(le: tuple[Stack, Client, str], tmp_path: Path) -> None:
    stack, client, namespace = le
    a = await start(stack, namespace, tmp_path / "a.log")
    b = await start(stack, namespace, tmp_path / "b.log")
    procs = [a, b]
    try:
        await eventually(lambda: asyncio.sleep(0, leads(a) or leads(b)), timeout=30)
        leader, standby = (a, b) if leads(a) else (b, a)
        await model(client, namespace, "first")
        await eventually(lambda: reconciled(client, namespace, "first"), timeout=30)
        assert not leads(standby)

        assert leader.proc is not None
        leader.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await model(client, namespace, "after-kill")
        await eventually(lambda: reconciled(client, namespace, "after-kill"), timeout=30, interval=0.1)
        took = time.monotonic() - killed
        assert took <= 17, f"the standby reconciled {took:.1f} s after kill -9 of the leader"
        assert leads(standby)

        c = await start(stack, namespace, tmp_path / "c.log")
        procs.append(c)
        assert not leads(c)
        terminated = time.monotonic()
        code = await standby.stop(signal.SIGTERM)
        await eventually(lambda: asyncio.sleep(0, leads(c)), timeout=10, interval=0.05)
        took = time.monotonic() - terminated
        assert code == 0
        assert took <= 3, f"the new leader took {took:.1f} s after SIGTERM of the old one"
        await model(client, namespace, "after-term")
        await eventually(lambda: reconciled(client, namespace, "after-term"), timeout=10)
    finally:
        for p in procs:
            await p.stop(signal.SIGKILL)


async def test_a_leader_that_cannot_renew_stops_writing(le: tuple[Stack, Client, str], tmp_path: Path) -> None:
    stack, client, namespace = le
    leader = await start(stack, namespace, tmp_path / "leader.log")
    try:
        await eventually(lambda: asyncio.sleep(0, leads(leader)), timeout=30)
        # Someone else takes the Lease (as another replica would after a partition): the leader's next renew
        # finds another holder and it must stop, as client-go's OnStoppedLeading.
        lease = await client.get(k8s.LEASES, LEASE, namespace)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update(
            {"holderIdentity": "intruder", "acquireTime": now, "renewTime": now, "leaseDurationSeconds": 3600}
        )
        await client.replace(k8s.LEASES, lease)
        taken = time.monotonic()
        assert leader.proc is not None
        proc = leader.proc
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout=30)
        took = time.monotonic() - taken
        assert code == 1, "losing the Lease is a runtime failure (exit 1)"
        assert took <= 10 + 2 * 1.2 + 1, f"it went on for {took:.1f} s after the Lease was taken"
        assert '"reason":"lease_taken"' in (tmp_path / "leader.log").read_text()
        after = await client.get(k8s.LEASES, LEASE, namespace)
        assert after["spec"]["holderIdentity"] == "intruder", "it did not take the Lease back"
    finally:
        await leader.stop(signal.SIGKILL)
