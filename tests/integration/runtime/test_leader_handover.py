"""R4 with real processes: two toy operators elect one leader on a Lease (15 s / 10 s / 2 s).

kill -9 of the leader hands over within 17 s; SIGTERM releases the Lease so the standby reconciles within
3 s; a leader whose Lease is taken stops and exits non-zero.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from substratus_controller.runtime import resources
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.testing import ControlPlane
from tests.conftest import ROOT
from tests.integration.runtime import toy

pytestmark = pytest.mark.integration


class Operators:
    """Toy operator processes, each with its own identity and log file."""

    def __init__(self, cp: ControlPlane, namespace: str, logdir: Path) -> None:
        self.cp, self.namespace, self.logdir = cp, namespace, logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, identity: str) -> None:
        log = (self.logdir / f"{identity}.log").open("wb")
        self.procs[identity] = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.runtime.toy", "--kubeconfig", str(self.cp.kubeconfig),
             "--identity", identity, "--leader-elect", "--lease-namespace", self.namespace],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)

    def log(self, identity: str) -> str:
        return (self.logdir / f"{identity}.log").read_text(errors="replace")[-3000:]

    async def standing_by(self, identity: str) -> bool:
        """The replica has synced its caches and waits for the Lease (its manager says so)."""
        return "leader_election_waiting" in (self.logdir / f"{identity}.log").read_text(errors="replace")


@pytest.fixture
def operators(widgets_crd: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Operators]:
    ops = Operators(widgets_crd, namespace, tmp_path)
    yield ops
    ops.stop_all()


async def holder(client: Client, namespace: str) -> str:
    try:
        lease = await client.get(resources.LEASES, "toy-lock", namespace)
    except NotFound:
        return ""
    return str(lease.get("spec", {}).get("holderIdentity") or "")


async def wait_for(check: Any, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout}s")


async def reconciled_by(client: Client, namespace: str, name: str) -> str:
    try:
        w = await client.get(toy.WIDGETS, name, namespace)
    except NotFound:
        return ""
    return str(w.get("status", {}).get("reconciledBy", ""))


async def test_kill_and_sigterm_handover(operators: Operators, namespace: str) -> None:
    client = await Client.connect(operators.cp.kubeconfig)
    try:
        operators.start("alpha")
        operators.start("beta")
        leader = await wait_for(lambda: holder(client, namespace), 30)
        standby = "beta" if leader == "alpha" else "alpha"
        await client.create(toy.WIDGETS, toy.widget("w1", namespace))
        try:
            assert await wait_for(lambda: reconciled_by(client, namespace, "w1"), 30) == leader
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nleader {leader}:\n{operators.log(leader)}") from None
        await wait_for(lambda: operators.standing_by(standby), 30)  # synced, and waiting for the Lease
        assert operators.procs[standby].poll() is None, operators.log(standby)

        # kill -9: no release; the standby takes over when the lease expires (15 s).
        killed_at = time.monotonic()
        operators.procs[leader].send_signal(signal.SIGKILL)
        await client.create(toy.WIDGETS, toy.widget("w2", namespace))
        assert await wait_for(lambda: reconciled_by(client, namespace, "w2"), 25) == standby
        handover = time.monotonic() - killed_at
        assert handover <= 17.0, f"kill -9 handover took {handover:.1f}s"

        # SIGTERM: the leader releases the lease; a new standby takes over within 3 s.
        operators.start("gamma")
        await wait_for(lambda: operators.standing_by("gamma"), 30)  # gamma has synced and is standing by
        assert await holder(client, namespace) == standby
        termed_at = time.monotonic()
        operators.procs[standby].send_signal(signal.SIGTERM)
        await client.create(toy.WIDGETS, toy.widget("w3", namespace))
        assert await wait_for(lambda: reconciled_by(client, namespace, "w3"), 10) == "gamma"
        handover = time.monotonic() - termed_at
        assert handover <= 3.0, f"SIGTERM handover took {handover:.1f}s"
        assert operators.procs[standby].wait(10) == 0, operators.log(standby)

        # A leader that loses its lease stops and exits non-zero.
        lease = await client.get(resources.LEASES, "toy-lock", namespace)
        lease["spec"]["holderIdentity"] = "intruder"
        lease["spec"]["renewTime"] = lease["spec"]["acquireTime"]
        await client.replace(resources.LEASES, lease)
        code = await asyncio.to_thread(operators.procs["gamma"].wait, 15)
        assert code != 0
        assert "lease" in operators.log("gamma").lower()
    finally:
        await client.close()
