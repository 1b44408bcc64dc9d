"""The simulated kubelet + scheduler against the real control plane (etcd + kube-apiserver + controller-manager).

Jobs complete and fail through the real Job controller, Deployments become ready through the real
ReplicaSet/Deployment controllers, rules hold pods Pending or not Ready, deleted pods really go away, and
the Node looks like a Ready GPU node. Timings are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from substratus_controller.jsontypes import JSON
from substratus_controller.runtime.client import MERGE_PATCH, Client
from substratus_controller.runtime.errors import ApiError, NotFound, ServerError
from substratus_controller.runtime.resources import DEPLOYMENTS, JOBS, NODES, PODS, SERVICEACCOUNTS
from substratus_controller.testing import ControlPlane
from substratus_controller.testing.kubelet import GPU_RESOURCE, Rule, SimulatedKubelet, default_rules

pytestmark = pytest.mark.integration

KubeletFactory = Callable[..., Awaitable[SimulatedKubelet]]


# ------------------------------------------------------------------------------------------------ helpers
async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns a truthy value without raising; return that value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = await check()
            if value:
                return value
        except (AssertionError, ApiError, KeyError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.1f}s: {last!r}")
        await asyncio.sleep(interval)


def conditions(obj: JSON) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or ()}


def condition(obj: JSON, kind: str) -> JSON:
    """The condition of that type (KeyError when missing: inside a coroutine, StopIteration would not do)."""
    found = [c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind]
    if not found:
        raise KeyError(kind)
    return dict(found[0])


def container(name: str, image: str, **extra: Any) -> JSON:
    return {"name": name, "image": image, **extra}


def pod_body(
    name: str, image: str, *, labels: dict[str, str] | None = None, restart: str = "Always", **spec: Any
) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [container("main", image)], "restartPolicy": restart, **spec},
    }


def job_body(name: str, image: str, *, backoff_limit: int = 0) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container("main", image)]}},
        },
    }


def deployment_body(name: str, image: str, replicas: int = 1) -> JSON:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container("main", image)]}},
        },
    }


async def job_pods(client: Client, ns: str, job: str) -> list[JSON]:
    return list((await client.list(PODS, ns, label_selector=f"job-name={job}"))["items"])


async def job_condition(client: Client, ns: str, name: str, kind: str) -> bool:
    return conditions(await client.get(JOBS, name, ns)).get(kind) == "True"


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture
async def client(control_plane: ControlPlane) -> AsyncIterator[Client]:
    c = await Client.connect(control_plane.kubeconfig)
    yield c
    await c.close()


@pytest.fixture
async def ns(client: Client, namespace: str) -> str:
    """The test namespace once its `default` ServiceAccount has its token (ServiceAccount admission in v1.20
    rejects pods until then)."""

    async def sa_ready() -> bool:
        return bool((await client.get(SERVICEACCOUNTS, "default", namespace)).get("secrets"))

    await eventually(sa_ready, timeout=20)
    return namespace


@pytest.fixture
async def kubelets(client: Client) -> AsyncIterator[KubeletFactory]:
    """Start simulated kubelets (stopped at teardown)."""
    started: list[SimulatedKubelet] = []

    async def start(**kwargs: Any) -> SimulatedKubelet:
        kubelet = SimulatedKubelet(client, **kwargs)
        await kubelet.start()
        started.append(kubelet)
        return kubelet

    yield start
    for kubelet in started:
        await kubelet.stop()
        assert kubelet.counts["error"] == 0, "the simulated kubelet logged pod errors"


# ------------------------------------------------------------------------------------------------ rules
def test_rules_match_images_labels_annotations_namespace() -> None:
    pod = {
        "metadata": {"namespace": "a", "labels": {"l": "1"}, "annotations": {"x": "y"}},
        "spec": {"initContainers": [{"image": "init:1"}], "containers": [{"image": "registry/trainer:fail-1"}]},
    }
    assert Rule("fail", image="fail").matches(pod)
    assert Rule("fail", image="init").matches(pod)  # init containers count
    assert not Rule("fail", image="nope").matches(pod)
    assert Rule("pending", image_regex=r"^registry/.*:fail-\d$").matches(pod)
    assert Rule("pending", labels={"l": "1"}, annotations={"x": "y"}, namespace="a").matches(pod)
    assert not Rule("pending", labels={"l": "2"}).matches(pod)
    assert not Rule("pending", annotations={"x": "z"}).matches(pod)
    assert not Rule("pending", namespace="b").matches(pod)
    assert not Rule("pending", image="fail", labels={"missing": "1"}).matches(pod)  # all criteria must hold
    assert Rule("not-ready").matches(pod)  # no criteria: matches everything
    assert [r.outcome for r in default_rules() if r.matches(pod)] == ["fail"]
    with pytest.raises(ValueError, match="unknown outcome"):
        Rule("explode")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ node
async def test_node_is_ready_with_gpu_capacity(client: Client, kubelets: KubeletFactory) -> None:
    kubelet = await kubelets(
        node_name="sim-gpu-node", gpus=4, node_labels={"gpu-type": "nvidia-l4"}, heartbeat_interval=0.5
    )
    node = await client.get(NODES, "sim-gpu-node")
    assert conditions(node) == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                                "PIDPressure": "False"}  # fmt: skip
    for field in ("capacity", "allocatable"):
        assert node["status"][field][GPU_RESOURCE] == "4"
        assert {"cpu", "memory", "ephemeral-storage", "pods"} <= node["status"][field].keys()
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "sim-gpu-node"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == "amd64"
    assert labels["gpu-type"] == "nvidia-l4"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.20.2"

    # The heartbeat keeps lastHeartbeatTime fresh (RFC 3339 seconds: wait for it to tick over).
    first = condition(node, "Ready")

    async def beat() -> bool:
        ready = condition(await client.get(NODES, "sim-gpu-node"), "Ready")
        assert ready["lastTransitionTime"] == first["lastTransitionTime"]
        return bool(ready["lastHeartbeatTime"] > first["lastHeartbeatTime"] and ready["status"] == "True")

    await eventually(beat, timeout=5)
    assert kubelet.counts["heartbeat"] >= 1

    # A deleted Node comes back with the next heartbeat.
    await client.delete(NODES, "sim-gpu-node")
    node = await eventually(lambda: client.get(NODES, "sim-gpu-node"), timeout=5)
    assert node["status"]["capacity"][GPU_RESOURCE] == "4"


# ------------------------------------------------------------------------------------------------ jobs
async def test_job_with_ok_image_completes(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    kubelet = await kubelets()
    t0 = time.monotonic()
    await client.create(JOBS, job_body("ok", "busybox:1.36"), ns)
    job = await eventually(lambda: job_condition(client, ns, "ok", "Complete"), timeout=15)
    assert job
    print(f"\nJob ok: Complete={job} {time.monotonic() - t0:.2f}s after create")
    job_obj = await client.get(JOBS, "ok", ns)
    assert job_obj["status"].get("succeeded") == 1
    [pod] = await job_pods(client, ns, "ok")
    key = f"{ns}/{pod['metadata']['name']}"
    assert pod["spec"]["nodeName"] == "sim-node"
    assert pod["status"]["phase"] == "Succeeded"
    assert kubelet.bound[key] == kubelet.started[key] == pod["metadata"]["uid"]
    assert kubelet.finished[key] == "Succeeded"
    [cs] = pod["status"]["containerStatuses"]
    assert cs["state"]["terminated"]["exitCode"] == 0
    assert cs["state"]["terminated"]["reason"] == "Completed"
    assert cs["ready"] is False
    assert cs["image"] == "busybox:1.36"
    assert conditions(pod)["Ready"] == "False"
    assert pod["status"]["podIP"].startswith("10.244.")
    assert pod["status"]["hostIP"] == kubelet.node_ip


async def test_job_with_failing_image_fails(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    kubelet = await kubelets()
    t0 = time.monotonic()
    await client.create(JOBS, job_body("bad", "example.com/trainer:will-fail", backoff_limit=0), ns)
    await eventually(lambda: job_condition(client, ns, "bad", "Failed"), timeout=15)
    print(f"\nJob bad: Failed=True {time.monotonic() - t0:.2f}s after create")
    job = await client.get(JOBS, "bad", ns)
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    pods = await job_pods(client, ns, "bad")
    assert [p["status"]["phase"] for p in pods] == ["Failed"]
    [cs] = pods[0]["status"]["containerStatuses"]
    assert (cs["state"]["terminated"]["exitCode"], cs["state"]["terminated"]["reason"]) == (1, "Error")
    assert kubelet.finished[f"{ns}/{pods[0]['metadata']['name']}"] == "Failed"


async def test_delays_are_respected(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    await kubelets(run_delay=1.0, finish_delay=1.0)
    t0 = time.monotonic()
    await client.create(PODS, pod_body("slow", "busybox", restart="Never"), ns)

    async def phase(expected: str) -> float:
        pod = await client.get(PODS, "slow", ns)
        assert pod["spec"].get("nodeName") == "sim-node"
        assert pod["status"].get("phase") == expected
        return time.monotonic() - t0

    bound = await eventually(lambda: phase("Pending"), timeout=5)
    running = await eventually(lambda: phase("Running"), timeout=5)
    succeeded = await eventually(lambda: phase("Succeeded"), timeout=5)
    print(f"\nrun_delay=finish_delay=1: bound {bound:.2f}s, Running {running:.2f}s, Succeeded {succeeded:.2f}s")
    assert bound < 1.0 <= running
    assert succeeded - running >= 0.9


# ------------------------------------------------------------------------------------------------ long-running
async def test_deployment_becomes_ready(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    await kubelets()
    t0 = time.monotonic()
    await client.create(DEPLOYMENTS, deployment_body("web", "nginx:1.25"), ns)

    async def ready() -> bool:
        return bool((await client.get(DEPLOYMENTS, "web", ns)).get("status", {}).get("readyReplicas") == 1)

    await eventually(ready, timeout=15)
    print(f"\nDeployment web: readyReplicas=1 {time.monotonic() - t0:.2f}s after create")
    [pod] = (await client.list(PODS, ns, label_selector="app=web"))["items"]
    assert pod["status"]["phase"] == "Running"
    assert conditions(pod) == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True",
                               "Ready": "True"}  # fmt: skip
    [cs] = pod["status"]["containerStatuses"]
    assert cs["ready"] is True
    assert cs["started"] is True
    assert cs["restartCount"] == 0
    assert "startedAt" in cs["state"]["running"]
    assert cs["imageID"]
    assert pod["status"]["startTime"]
    assert pod["status"]["podIPs"] == [{"ip": pod["status"]["podIP"]}]

    # Scale down: the ReplicaSet controller deletes the pod gracefully, the kubelet finishes the deletion.
    await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 0}}, ns)

    async def gone() -> bool:
        return not (await client.list(PODS, ns, label_selector="app=web"))["items"]

    await eventually(gone, timeout=10)


async def test_init_containers_complete_first(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    await kubelets()
    body = pod_body("with-init", "nginx", initContainers=[container("fetch", "alpine/git")])
    await client.create(PODS, body, ns)

    async def running() -> JSON:
        pod = await client.get(PODS, "with-init", ns)
        assert conditions(pod).get("Ready") == "True"
        return pod

    pod = await eventually(running)
    [init] = pod["status"]["initContainerStatuses"]
    assert init["name"] == "fetch"
    assert init["ready"] is True
    assert init["state"]["terminated"]["exitCode"] == 0


async def test_failing_image_in_long_running_pod_crash_loops(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    await kubelets()
    await client.create(PODS, pod_body("crash", "server:fail"), ns)

    async def crashing() -> JSON:
        pod = await client.get(PODS, "crash", ns)
        assert pod["status"].get("phase") == "Running"
        return pod

    pod = await eventually(crashing)
    assert conditions(pod)["Ready"] == "False"
    [cs] = pod["status"]["containerStatuses"]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["restartCount"] == 1


# ------------------------------------------------------------------------------------------------ rules live
async def test_pending_rule_keeps_pod_pending(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    kubelet = await kubelets(rules=[Rule("pending", labels={"sim": "pending"}),
                                    Rule("pending", labels={"sim": "stuck"}, bind=True), *default_rules()])  # fmt: skip
    await client.create(PODS, pod_body("held", "nginx", labels={"sim": "pending"}), ns)
    await client.create(PODS, pod_body("stuck", "nginx", labels={"sim": "stuck"}), ns)
    await client.create(PODS, pod_body("free", "nginx"), ns)

    async def free_ready() -> bool:
        return conditions(await client.get(PODS, "free", ns)).get("Ready") == "True"

    await eventually(free_ready)
    await asyncio.sleep(1.0)  # give the kubelet every chance to (wrongly) start the held pods

    held = await client.get(PODS, "held", ns)
    assert held["status"]["phase"] == "Pending"
    assert "nodeName" not in held["spec"]
    scheduled = condition(held, "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert f"{ns}/held" in kubelet.unschedulable

    stuck = await client.get(PODS, "stuck", ns)
    assert stuck["spec"]["nodeName"] == "sim-node"
    assert stuck["status"]["phase"] == "Pending"
    assert "containerStatuses" not in stuck["status"]
    assert f"{ns}/stuck" not in kubelet.started


async def test_not_ready_rule_runs_without_readiness(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    await kubelets(rules=[Rule("not-ready", image="unready")])
    await client.create(PODS, pod_body("nr", "example.com/unready:1"), ns)
    await client.create(JOBS, job_body("nr-job", "example.com/unready:1"), ns)

    async def running() -> JSON:
        pod = await client.get(PODS, "nr", ns)
        assert pod["status"].get("phase") == "Running"
        return pod

    pod = await eventually(running)
    assert conditions(pod)["Ready"] == "False"
    assert conditions(pod)["ContainersReady"] == "False"
    assert condition(pod, "Ready")["reason"] == "ContainersNotReady"
    [cs] = pod["status"]["containerStatuses"]
    assert (cs["ready"], cs["started"]) == (False, True)

    # A not-ready run-to-completion pod runs forever: its Job neither completes nor fails.
    async def job_pod_running() -> bool:
        return [p["status"].get("phase") for p in await job_pods(client, ns, "nr-job")] == ["Running"]

    await eventually(job_pod_running)
    await asyncio.sleep(1.0)
    assert not conditions(await client.get(JOBS, "nr-job", ns))


async def test_node_selector_and_gpu_requests(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    kubelet = await kubelets(node_labels={"cloud.google.com/gke-accelerator": "nvidia-l4"}, gpus=2)
    gpu = {"resources": {"limits": {GPU_RESOURCE: "2"}}}
    fits = pod_body("fits", "vllm", nodeSelector={"cloud.google.com/gke-accelerator": "nvidia-l4"})
    fits["spec"]["containers"][0] |= gpu
    wrong_selector = pod_body("elsewhere", "vllm", nodeSelector={"cloud.google.com/gke-accelerator": "nvidia-a100"})
    too_big = pod_body("too-big", "vllm")
    too_big["spec"]["containers"][0] |= {"resources": {"limits": {GPU_RESOURCE: "3"}}}
    for body in (fits, wrong_selector, too_big):
        await client.create(PODS, body, ns)

    async def fits_ready() -> bool:
        return conditions(await client.get(PODS, "fits", ns)).get("Ready") == "True"

    await eventually(fits_ready)

    async def unschedulable(name: str) -> str:
        pod = await client.get(PODS, name, ns)
        assert "nodeName" not in pod["spec"]
        cond = condition(pod, "PodScheduled")
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
        return str(cond["message"])

    assert "node selector" in await eventually(lambda: unschedulable("elsewhere"))
    assert "Insufficient nvidia.com/gpu" in await eventually(lambda: unschedulable("too-big"))
    assert {f"{ns}/elsewhere", f"{ns}/too-big"} <= kubelet.unschedulable.keys()


# ------------------------------------------------------------------------------------------------ deletion
async def test_deleted_running_pod_goes_away(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    kubelet = await kubelets()
    await client.create(PODS, pod_body("doomed", "nginx"), ns)

    async def ready() -> JSON:
        pod = await client.get(PODS, "doomed", ns)
        assert conditions(pod).get("Ready") == "True"
        return pod

    uid = (await eventually(ready))["metadata"]["uid"]
    t0 = time.monotonic()
    await client.delete(PODS, "doomed", ns)  # the default 30 s grace period: Terminating until the kubelet acts

    async def gone() -> bool:
        try:
            await client.get(PODS, "doomed", ns)
        except NotFound:
            return True
        return False

    await eventually(gone, timeout=5)
    print(f"\nRunning pod deleted (grace 30 s): gone after {time.monotonic() - t0:.2f}s")
    assert kubelet.deleted[f"{ns}/doomed"] == uid

    # A pod of the same name created again runs again.
    await client.create(PODS, pod_body("doomed", "nginx"), ns)
    again = await eventually(ready)
    assert again["metadata"]["uid"] != uid


async def test_deleted_pod_with_finalizer_waits_for_it(client: Client, ns: str, kubelets: KubeletFactory) -> None:
    kubelet = await kubelets(namespace=ns)  # counts only this namespace's deletions
    body = pod_body("kept", "nginx")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create(PODS, body, ns)

    async def ready() -> bool:
        return conditions(await client.get(PODS, "kept", ns)).get("Ready") == "True"

    await eventually(ready)
    await client.delete(PODS, "kept", ns)

    async def finished_by_kubelet() -> JSON:
        pod = await client.get(PODS, "kept", ns)
        assert pod["metadata"].get("deletionGracePeriodSeconds") == 0
        return pod

    await eventually(finished_by_kubelet, timeout=5)
    await asyncio.sleep(0.5)
    assert kubelet.counts["delete"] == 1  # no repeated DELETEs while the finalizer holds the pod
    await client.patch(PODS, "kept", {"metadata": {"finalizers": None}}, ns)

    async def gone() -> bool:
        try:
            await client.get(PODS, "kept", ns)
        except NotFound:
            return True
        return False

    await eventually(gone, timeout=5)


# ------------------------------------------------------------------------------------------------ robustness
async def test_restarted_kubelet_adopts_pods_without_redoing_work(
    client: Client, ns: str, kubelets: KubeletFactory
) -> None:
    first = await kubelets(namespace=ns)
    await client.create(PODS, pod_body("long", "nginx"), ns)
    await client.create(JOBS, job_body("short", "busybox"), ns)
    await eventually(lambda: job_condition(client, ns, "short", "Complete"))

    async def long_ready() -> bool:
        return conditions(await client.get(PODS, "long", ns)).get("Ready") == "True"

    await eventually(long_ready)
    await first.stop()
    assert first.counts["start"] == 2

    # A second kubelet (same node) sees both pods again: nothing to bind, start or finish.
    second = await kubelets(namespace=ns, resync_period=0.2)
    await asyncio.sleep(1.0)  # several resyncs
    assert second.counts["bind"] == second.counts["start"] == second.counts["finish"] == 0
    assert await long_ready()

    # ...but it does handle new pods.
    await client.create(PODS, pod_body("newer", "nginx"), ns)

    async def newer_started() -> bool:
        return f"{ns}/newer" in second.started

    await eventually(newer_started)


class FlakyClient(Client):
    """A client whose first `failures` pod-status patches fail with a 500 (an overloaded API server)."""

    failures = 0

    async def patch(self, res: Any, name: str, patch: Any, namespace: str | None = None, *,
                    content_type: str = MERGE_PATCH, subresource: str | None = None, field_manager: str | None = None,
                    timeout: float | None = None) -> JSON:  # fmt: skip
        if res is PODS and subresource == "status" and self.failures > 0:
            self.failures -= 1
            raise ServerError("injected failure", code=500)
        return await super().patch(res, name, patch, namespace, content_type=content_type, subresource=subresource,
                                   field_manager=field_manager, timeout=timeout)  # fmt: skip


async def test_pod_errors_are_logged_and_retried(control_plane: ControlPlane, ns: str) -> None:
    flaky = await FlakyClient.connect(control_plane.kubeconfig)
    assert isinstance(flaky, FlakyClient)
    kubelet = SimulatedKubelet(flaky, namespace=ns)
    try:
        await kubelet.start()
        flaky.failures = 3
        with capture_logs() as logs:
            await flaky.create(PODS, pod_body("retried", "nginx"), ns)

            async def ready() -> bool:
                return conditions(await flaky.get(PODS, "retried", ns)).get("Ready") == "True"

            await eventually(ready)
        assert kubelet.counts["error"] == 3
        failures = [e for e in logs if e["event"] == "pod_sync_failed"]
        assert [e["pod"] for e in failures] == [f"{ns}/retried"] * 3
        assert [e["retries"] for e in failures] == [0, 1, 2]
        assert kubelet.ready
    finally:
        await kubelet.stop()
        await flaky.close()
