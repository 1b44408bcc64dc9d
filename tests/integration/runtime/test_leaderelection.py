"""Lease leader election against the real API server: one leader, handover on release, takeover after expiry,
loss when renewals fail, the Lease's fields and the leader gauge.

Short durations keep the tests fast (lease 2 s / renew 1.5 s / retry 0.3 s); one test uses the production
defaults (15 s / 10 s / 2 s) to check R4's "handover within 3 s" as configured. Timings are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from substratus_controller.runtime import resources
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.leaderelection import LeaderElector, LeadershipLost
from substratus_controller.runtime.metrics import RuntimeMetrics
from substratus_controller.testing import ControlPlane

pytestmark = pytest.mark.integration

LEASE = "test-lock"
FAST: dict[str, float] = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.3}
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Candidate:
    """One elector with its own metrics registry, recording when its callbacks ran."""

    def __init__(self, client: Client, namespace: str, identity: str, **options: Any) -> None:
        self.identity = identity
        self.metrics = RuntimeMetrics()
        self.started: list[float] = []
        self.stopped: list[float] = []
        self.new_leaders: list[str] = []
        self.elector = LeaderElector(
            client,
            name=LEASE,
            namespace=namespace,
            identity=identity,
            metrics=self.metrics,
            on_started_leading=lambda: self.started.append(time.monotonic()),
            on_stopped_leading=lambda: self.stopped.append(time.monotonic()),
            on_new_leader=self.new_leaders.append,
            **options,
        )
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(), name=f"elector-{self.identity}")
        return self

    async def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def gauge(self) -> float | None:
        return self.metrics.registry.get_sample_value("leader_election_master_status", {"name": LEASE})


@pytest.fixture
async def client(control_plane: ControlPlane) -> AsyncIterator[Client]:
    c = await Client.connect(control_plane.kubeconfig, timeout=10)
    yield c
    await c.close()


@pytest.fixture
async def candidates() -> AsyncIterator[list[Candidate]]:
    made: list[Candidate] = []
    yield made
    for c in made:
        await c.cancel()


async def first_leader(*cands: Candidate, within: float = 10.0) -> Candidate:
    waits = {asyncio.ensure_future(c.elector.wait_leading()): c for c in cands}
    done, pending = await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    for fut in pending:
        fut.cancel()
    assert done, f"nobody became leader within {within}s"
    return waits[next(iter(done))]


async def lease(client: Client, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = (await client.get(resources.LEASES, LEASE, namespace))["spec"]
    return spec


async def assert_single_leader(cands: list[Candidate], seconds: float) -> None:
    """Sample often for `seconds`: never two leaders at once, never a leader whose task has ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        leaders = [c.identity for c in cands if c.elector.is_leader()]
        assert len(leaders) <= 1, f"split brain: {leaders}"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------------------------------- tests
async def test_one_leader_then_release_hands_over(client: Client, namespace: str, candidates: list[Candidate]) -> None:
    a = Candidate(client, namespace, "replica-a", **FAST).start()
    b = Candidate(client, namespace, "replica-b", **FAST).start()
    candidates += [a, b]
    leader = await first_leader(a, b)
    other = b if leader is a else a
    await assert_single_leader([a, b], seconds=1.5)  # five renew periods
    assert leader.elector.is_leader()
    assert not other.elector.is_leader()
    assert (leader.gauge(), other.gauge()) == (1.0, 0.0)
    assert other.new_leaders == [leader.identity]
    assert other.elector.leader() == leader.identity

    spec = await lease(client, namespace)
    assert spec["holderIdentity"] == leader.identity
    assert spec["leaseDurationSeconds"] == 2
    assert spec["leaseTransitions"] == 0  # created by its first holder
    assert MICRO_TIME.match(spec["acquireTime"])
    assert MICRO_TIME.match(spec["renewTime"])
    assert spec["renewTime"] > spec["acquireTime"]  # renewed since, acquireTime kept
    first_acquire = spec["acquireTime"]
    await asyncio.sleep(0.7)
    later = await lease(client, namespace)
    assert later["acquireTime"] == first_acquire
    assert later["renewTime"] > spec["renewTime"]

    # SIGTERM path: cancel -> on_stopped_leading, release, and the other one leads within a retry period.
    t0 = time.monotonic()
    await leader.cancel()
    await asyncio.wait_for(other.elector.wait_leading(), 5)
    handover = time.monotonic() - t0
    print(f"\nhandover after release (watch on, retry 0.3 s): {handover * 1000:.0f} ms")
    assert handover < 3.0
    assert handover < FAST["retry_period"] + 0.5
    assert len(leader.stopped) == 1
    assert leader.stopped[0] - t0 < 0.1
    assert (leader.gauge(), other.gauge()) == (0.0, 1.0)
    assert not leader.elector.is_leader()
    spec = await lease(client, namespace)
    assert spec["holderIdentity"] == other.identity
    assert spec["leaseTransitions"] == 1
    assert spec["leaseDurationSeconds"] == 2  # the released Lease said 1; the new holder writes its own
    assert spec["acquireTime"] > first_acquire
    assert other.new_leaders == [leader.identity, other.identity]


async def test_release_handover_without_watch_within_a_jittered_retry(
    client: Client, namespace: str, candidates: list[Candidate]
) -> None:
    """Pure polling (as client-go, or when RBAC forbids watching Leases): the next jittered tick takes over."""
    a = Candidate(client, namespace, "a", watch_lease=False, **FAST).start()
    candidates.append(a)
    await asyncio.wait_for(a.elector.wait_leading(), 5)
    b = Candidate(client, namespace, "b", watch_lease=False, **FAST).start()
    candidates.append(b)
    await asyncio.sleep(0.5)
    assert not b.elector.is_leader()
    assert b.new_leaders == ["a"]
    t0 = time.monotonic()
    await a.cancel()
    await asyncio.wait_for(b.elector.wait_leading(), 5)
    handover = time.monotonic() - t0
    print(f"\nhandover after release (polling only, retry 0.3 s, jitter 1.2): {handover * 1000:.0f} ms")
    assert handover < FAST["retry_period"] * (1 + 1.2) + 0.3
    assert (await lease(client, namespace))["leaseTransitions"] == 1


async def test_release_handover_with_production_timings_is_within_3s(
    client: Client, namespace: str, candidates: list[Candidate]
) -> None:
    """R4 as configured (lease 15 s, renew 10 s, retry 2 s): SIGTERM of the leader hands over within 3 s."""
    a = Candidate(client, namespace, "a").start()
    candidates.append(a)
    await asyncio.wait_for(a.elector.wait_leading(), 5)
    b = Candidate(client, namespace, "b").start()
    candidates.append(b)
    await asyncio.sleep(0.5)
    assert not b.elector.is_leader()
    t0 = time.monotonic()
    await a.cancel()
    await asyncio.wait_for(b.elector.wait_leading(), 5)
    handover = time.monotonic() - t0
    print(f"\nhandover after release (15/10/2 s): {handover * 1000:.0f} ms")
    assert handover < 3.0


@pytest.mark.parametrize("watch_lease", [True, False], ids=["watch", "polling"])
async def test_dead_leader_is_replaced_after_lease_duration(
    client: Client, namespace: str, candidates: list[Candidate], watch_lease: bool
) -> None:
    """A leader that dies without releasing (kill -9): the other waits out the lease, no less, then leads."""
    a = Candidate(client, namespace, "a", release_on_cancel=False, watch_lease=watch_lease, **FAST).start()
    candidates.append(a)
    await asyncio.wait_for(a.elector.wait_leading(), 5)
    b = Candidate(client, namespace, "b", watch_lease=watch_lease, **FAST).start()
    candidates.append(b)
    await asyncio.sleep(1.0)
    assert not b.elector.is_leader()
    t_kill = time.monotonic()
    await a.cancel()
    assert (await lease(client, namespace))["holderIdentity"] == "a"  # not released
    await asyncio.wait_for(b.elector.wait_leading(), 10)
    takeover = time.monotonic() - t_kill
    print(f"\ntakeover of a dead leader's lease ({'watch' if watch_lease else 'polling'}, lease 2 s): {takeover:.2f} s")
    lease_duration, retry = FAST["lease_duration"], FAST["retry_period"]
    # The last renewal was at most one retry period (+ a round trip) before the kill; the candidate must wait a
    # full lease duration after seeing it. Watching sees it at once; polling up to one jittered retry later.
    assert takeover >= lease_duration - retry - 0.15
    assert takeover <= lease_duration + (0 if watch_lease else retry * 2.2) + 0.4
    spec = await lease(client, namespace)
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


async def test_leader_overwritten_by_another_identity_stops_at_once(
    client: Client, control_plane: ControlPlane, namespace: str, candidates: list[Candidate]
) -> None:
    a = Candidate(client, namespace, "a", **FAST)
    candidates.append(a)
    a.start()
    await asyncio.wait_for(a.elector.wait_leading(), 5)
    assert a.gauge() == 1.0
    # Another writer takes the Lease by force (as a misconfigured replica or an operator might).
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
    current = control_plane.request(path)
    current["spec"].update(holderIdentity="intruder", leaseDurationSeconds=60)
    t0 = time.monotonic()
    control_plane.request(path, method="PUT", body=current)
    assert a.task is not None
    with pytest.raises(LeadershipLost) as lost:
        await asyncio.wait_for(a.task, 5)
    elapsed = time.monotonic() - t0
    print(f"\nleader noticed the overwrite after {elapsed * 1000:.0f} ms")
    assert lost.value.reason == "lease_taken"
    assert elapsed < FAST["retry_period"] + 0.3
    assert len(a.stopped) == 1
    assert not a.elector.is_leader()
    assert a.gauge() == 0.0
    await asyncio.sleep(0.7)
    spec = await lease(client, namespace)
    assert spec["holderIdentity"] == "intruder"  # the lost leader wrote nothing after the overwrite


async def test_release_works_when_the_cached_lease_is_stale(
    client: Client, control_plane: ControlPlane, namespace: str, candidates: list[Candidate]
) -> None:
    """Someone else bumped the Lease's resourceVersion (here: a label) just before SIGTERM: still released."""
    a = Candidate(client, namespace, "a", **FAST).start()
    candidates.append(a)
    await asyncio.wait_for(a.elector.wait_leading(), 5)
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
    control_plane.request(path, method="PATCH", body={"metadata": {"labels": {"touched": "yes"}}},
                          content_type="application/merge-patch+json")  # fmt: skip
    conflicts = {"code": "409", "method": "PUT", "host": urlsplit(client.host).netloc}
    before = client.metrics.registry.get_sample_value("rest_client_requests_total", conflicts) or 0
    await a.cancel()  # no await in between: the elector still holds the old resourceVersion
    assert (client.metrics.registry.get_sample_value("rest_client_requests_total", conflicts) or 0) >= before + 1
    spec = await lease(client, namespace)
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1


async def test_leader_that_cannot_renew_stops_within_renew_deadline() -> None:
    """The API server dies under the leader (on a private control plane): on_stopped_leading within the deadline."""
    cp = ControlPlane()
    await asyncio.to_thread(cp.start)
    client = await Client.connect(cp.kubeconfig, timeout=10)
    try:
        cp.request("/api/v1/namespaces", method="POST", body={"metadata": {"name": "election"}})
        a = Candidate(client, "election", "a", **FAST)
        a.start()
        await asyncio.wait_for(a.elector.wait_leading(), 10)
        await asyncio.sleep(0.5)  # a few renewals
        t_kill = time.monotonic()
        await asyncio.to_thread(cp.stop_apiserver, signal.SIGKILL)
        assert a.task is not None
        with pytest.raises(LeadershipLost) as lost:
            await asyncio.wait_for(a.task, 10)
        assert len(a.stopped) == 1
        stopped_after = a.stopped[0] - t_kill
        print(f"\nleader stopped {stopped_after:.2f} s after the API server died (renew deadline 1.5 s)")
        assert lost.value.reason == "renew_deadline_exceeded"
        # The deadline runs from the start of the last successful renewal, at most a retry period (+ a round
        # trip) before the kill: so between renew_deadline - retry_period and renew_deadline after it.
        assert FAST["renew_deadline"] - FAST["retry_period"] - 0.15 <= stopped_after <= FAST["renew_deadline"] + 0.15
        assert a.gauge() == 0.0
        assert not a.elector.is_leader()
    finally:
        await client.close()
        await asyncio.to_thread(cp.stop)


async def test_invalid_timings_are_refused(client: Client) -> None:
    with pytest.raises(ValueError, match="renew_deadline"):
        LeaderElector(client, name="x", namespace="y", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="jitter_factor"):
        LeaderElector(client, name="x", namespace="y", renew_deadline=2, retry_period=2)
    elector = LeaderElector(client, name="x", namespace="y")
    assert re.match(r".+_[0-9a-f-]{36}$", elector.identity)
    assert not elector.is_leader()
