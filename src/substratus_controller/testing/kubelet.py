"""A simulated kubelet and scheduler, for tests and the demo only (there is no container runtime here).

The test control plane (`ControlPlane`) runs etcd, kube-apiserver and kube-controller-manager but no
scheduler and no kubelet, so pods would stay Pending forever. `SimulatedKubelet` plays both parts for one
Node, through the ordinary API and nothing else:

- Node: it creates (or updates) a Node named `node_name` that is Ready, with capacity/allocatable for cpu,
  memory, ephemeral-storage, pods and `nvidia.com/gpu`, the well-known hostname/os/arch labels plus
  `node_labels`, and refreshes the Ready condition's `lastHeartbeatTime` every `heartbeat_interval` seconds
  (re-creating the Node if someone deleted it).
- Scheduler: every Pending pod without `spec.nodeName` whose scheduler is the default one is bound to the
  node with a `Binding` (pods/<name>/binding), unless it cannot be placed: a `pending` rule, a nodeSelector
  the node's labels do not satisfy, or more `nvidia.com/gpu` than the node has. Such pods stay Pending and
  get the scheduler's `PodScheduled=False, reason=Unschedulable` condition. Only the nodeSelector and the
  per-pod GPU count are checked (no affinity, taints, or cumulative resource accounting).
- Kubelet: a pod bound to the node is started `run_delay` seconds after the kubelet first saw it bound:
  its status subresource gets phase Running, the PodScheduled/Initialized/ContainersReady/Ready conditions,
  podIP/hostIP, startTime, a running status for every container and a terminated (exit 0) status for every
  init container. Pods with restartPolicy Never/OnFailure (Job pods) then finish `finish_delay` seconds
  after they started: phase Succeeded (exit 0, reason Completed) or Failed (exit 1, reason Error). Pods
  with restartPolicy Always stay Running and Ready.
- Deletion: a pod bound to the node that gets a deletionTimestamp is deleted with gracePeriodSeconds=0,
  as a real kubelet does once its containers are gone; otherwise it would stay Terminating forever.

Rules decide each pod's outcome: the first `Rule` that matches (container image substring or regex, pod
labels, annotations, namespace) wins; with none, the pod succeeds (run-to-completion) or runs Ready
(restartPolicy Always). Outcomes: `succeed`; `fail` (run-to-completion: phase Failed; Always: Running but
not Ready, container waiting in CrashLoopBackOff); `pending` (never starts: unscheduled, or with
`bind=True` bound but without any status); `not-ready` (Running, Ready=False; never finishes).
`default_rules()` fails pods with an image containing "fail".

Invariants:
- All writes go through the API: Bindings, status-subresource merge patches carrying the
  resourceVersion they were computed from (a stale view gets 409 and is retried with the fresh one), and
  DELETE with gracePeriodSeconds=0 and a uid precondition. Nothing else of a pod is changed.
- Idempotent: the next step is derived from the pod's current state (nodeName, phase,
  deletionTimestamp), so re-deliveries, resyncs and a restarted kubelet do not repeat completed steps.
  Pod IPs are derived from the pod's uid, so they are stable too.
- Robust: a failure on one pod is logged (structlog) and that pod is retried with exponential backoff
  (50 ms -> 10 s); it never stops the loop. `run()` returns only when cancelled.
- Several kubelets with different node names can share a cluster: binding is first-come (a 409 means
  another one won), and each kubelet only touches pods bound to its own node.
- Each pod key (namespace/name) is handled by one worker at a time (the runtime workqueue guarantees it).

What happened is recorded for tests in `bound`, `started`, `finished`, `deleted`, `unschedulable`
(dicts keyed by "namespace/name") and `counts` (a Counter of actions).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import structlog

from substratus_controller.jsontypes import JSON
from substratus_controller.runtime.backoff import Backoff
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.clock import wall_rfc3339
from substratus_controller.runtime.errors import AlreadyExists, ApiError, Conflict, Forbidden, NotFound
from substratus_controller.runtime.informer import FuncHandler, Informer
from substratus_controller.runtime.ratelimit import ItemExponentialFailureRateLimiter
from substratus_controller.runtime.resources import NODES, PODS
from substratus_controller.runtime.store import object_key
from substratus_controller.runtime.workqueue import RateLimitingQueue, ShutDown

__all__ = ["GPU_RESOURCE", "Outcome", "Rule", "SimulatedKubelet", "default_rules"]

Outcome = Literal["succeed", "fail", "pending", "not-ready"]
OUTCOMES: Final[frozenset[str]] = frozenset({"succeed", "fail", "pending", "not-ready"})
GPU_RESOURCE: Final = "nvidia.com/gpu"
SIMULATED_ANNOTATION: Final = "testing.substratus.ai/simulated-kubelet"
KUBELET_VERSION: Final = "v1.20.2"
DEFAULT_CAPACITY: Final[Mapping[str, str]] = {
    "cpu": "32",
    "memory": "256Gi",
    "ephemeral-storage": "1Ti",
    "pods": "110",
}
RUN_TO_COMPLETION: Final = frozenset({"Never", "OnFailure"})

log = structlog.get_logger("substratus.testing.kubelet")


# ------------------------------------------------------------------------------------------------ rules
@dataclass(frozen=True, slots=True)
class Rule:
    """Decides the outcome of the pods it matches. Every criterion given must hold; none given matches all.

    - `image`: a substring of the image of any container or init container;
    - `image_regex`: a regular expression `re.search`ed in those images;
    - `labels` / `annotations`: each key must be present on the pod with exactly that value;
    - `namespace`: the pod's namespace.
    `bind` only matters for `pending`: True binds the pod to the node but never starts it (a pod stuck
    before its containers run); False (default) leaves it unscheduled.
    """

    outcome: Outcome
    image: str | None = None
    image_regex: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    namespace: str | None = None
    bind: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; expected one of {sorted(OUTCOMES)}")
        if self.image_regex is not None:
            re.compile(self.image_regex)  # fail early on a bad pattern

    def matches(self, pod: JSON) -> bool:
        meta = pod.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        if any(labels.get(k) != v for k, v in self.labels.items()):
            return False
        annotations = meta.get("annotations") or {}
        if any(annotations.get(k) != v for k, v in self.annotations.items()):
            return False
        if self.image is None and self.image_regex is None:
            return True
        images = pod_images(pod)
        if self.image is not None and not any(self.image in image for image in images):
            return False
        return self.image_regex is None or any(re.search(self.image_regex, image) for image in images)


def default_rules() -> tuple[Rule, ...]:
    """Pods with an image containing "fail" fail; everything else succeeds (or runs Ready)."""
    return (Rule("fail", image="fail"),)


def pod_images(pod: JSON) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c.get("image", "")) for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]]


# ------------------------------------------------------------------------------------------------ helpers
def _now() -> str:
    return wall_rfc3339()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _ip_from(seed: str, prefix: str) -> str:
    """A stable IPv4 address under a /16 `prefix` ("10.244"), derived from `seed`."""
    h = hashlib.sha256(seed.encode()).digest()
    return f"{prefix}.{h[0]}.{h[1] % 253 + 2}"


def _condition(kind: str, status: bool, now: str, reason: str | None = None, message: str | None = None) -> JSON:
    cond: JSON = {"type": kind, "status": "True" if status else "False", "lastTransitionTime": now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _namespace_terminating(exc: ApiError) -> bool:
    causes = (exc.status.get("details") or {}).get("causes") or ()
    return any(c.get("reason") == "NamespaceTerminating" for c in causes) or "being terminated" in exc.message


def _gpu_request(pod: JSON) -> int:
    """The pod's nvidia.com/gpu count as the scheduler sees it: max(sum over containers, any init container)."""

    def gpus(container: JSON) -> int:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        value = limits.get(GPU_RESOURCE, requests.get(GPU_RESOURCE))
        try:
            return int(str(value)) if value is not None else 0
        except ValueError:
            return 0

    spec = pod.get("spec") or {}
    regular = sum(gpus(c) for c in spec.get("containers") or ())
    init = max((gpus(c) for c in spec.get("initContainers") or ()), default=0)
    return max(regular, init)


# ------------------------------------------------------------------------------------------------ kubelet
class SimulatedKubelet:
    """A fake kubelet + scheduler for one Node (see the module docstring). For tests and the demo only.

    Use `await kubelet.start()` / `await kubelet.stop()`, `async with SimulatedKubelet(...)`, or run
    `await kubelet.run()` in a task and cancel it.
    """

    def __init__(
        self,
        client: Client,
        *,
        node_name: str = "sim-node",
        rules: Sequence[Rule] = default_rules(),
        run_delay: float = 0.0,
        finish_delay: float = 0.0,
        node_labels: Mapping[str, str] | None = None,
        gpus: int = 8,
        capacity: Mapping[str, str] | None = None,
        namespace: str | None = None,
        heartbeat_interval: float = 10.0,
        resync_period: float | None = 30.0,
        workers: int = 4,
        node_ip: str | None = None,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.rules: list[Rule] = list(rules)
        self.run_delay = run_delay
        self.finish_delay = finish_delay
        self.node_labels: dict[str, str] = {
            "kubernetes.io/hostname": node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **(node_labels or {}),
        }
        self.gpus = gpus
        self.capacity: dict[str, str] = {**DEFAULT_CAPACITY, GPU_RESOURCE: str(gpus), **(capacity or {})}
        self.namespace = namespace
        self.heartbeat_interval = heartbeat_interval
        self.resync_period = resync_period
        self.workers = workers
        self.node_ip = node_ip or _ip_from(node_name, "10.240")

        # What happened, for tests (keys are "namespace/name").
        self.bound: dict[str, str] = {}  # -> pod uid
        self.started: dict[str, str] = {}  # -> pod uid
        self.finished: dict[str, str] = {}  # -> "Succeeded" | "Failed"
        self.deleted: dict[str, str] = {}  # -> pod uid
        self.unschedulable: dict[str, str] = {}  # -> the message of the PodScheduled=False condition
        self.counts: Counter[str] = Counter()

        self._since = _now()
        self._bound_at: dict[str, float] = {}  # pod uid -> loop time first seen bound to this node
        self._started_at: dict[str, float] = {}  # pod uid -> loop time first seen Running
        self._informer: Informer | None = None
        self._queue: RateLimitingQueue[str] | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------- lifecycle
    @property
    def ready(self) -> bool:
        """The Node is registered and the pod informer has synced."""
        return self._ready.is_set()

    async def start(self, timeout: float = 30.0) -> None:
        """Run in a background task; return once ready (raises if it is not ready within `timeout`)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self.run(), name=f"simulated-kubelet:{self.node_name}")
        waiter = asyncio.ensure_future(self._ready.wait())
        try:
            done, _ = await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._task in done:
            self._task.result()  # re-raise why run() ended
            raise RuntimeError("the simulated kubelet stopped during start-up")
        if not done:
            await self.stop()
            raise TimeoutError(f"simulated kubelet {self.node_name!r} not ready within {timeout:g}s")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> SimulatedKubelet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Register the Node, then schedule and run pods until cancelled."""
        self._ready.clear()
        queue: RateLimitingQueue[str] = RateLimitingQueue(
            rate_limiter=ItemExponentialFailureRateLimiter(0.05, 10.0), name=f"simulated-kubelet:{self.node_name}"
        )
        informer = Informer(self.client, PODS, namespace=self.namespace, resync_period=self.resync_period)
        self._queue, self._informer = queue, informer
        informer.add_handler(
            FuncHandler(add=self._enqueue, update=lambda _old, new: self._enqueue(new), delete=self._on_delete)
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._register_node_until_done()
            tasks.append(asyncio.create_task(informer.run(), name="simulated-kubelet:pods"))
            tasks.append(asyncio.create_task(self._heartbeat_loop(), name="simulated-kubelet:heartbeat"))
            tasks.extend(
                asyncio.create_task(self._worker(), name=f"simulated-kubelet:worker-{i}") for i in range(self.workers)
            )
            await informer.wait_synced()
            self._ready.set()
            log.info("simulated_kubelet_ready", node=self.node_name, namespace=self.namespace or "*")
            await asyncio.gather(*tasks)
        finally:
            self._ready.clear()
            queue.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------------------------------- rules
    def rule_for(self, pod: JSON) -> Rule | None:
        """The first rule matching `pod`, if any."""
        return next((rule for rule in self.rules if rule.matches(pod)), None)

    def outcome_for(self, pod: JSON) -> Outcome:
        rule = self.rule_for(pod)
        return rule.outcome if rule is not None else "succeed"

    # ------------------------------------------------------------------------------------------- node
    def node_body(self) -> JSON:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": dict(self.node_labels),
                "annotations": {SIMULATED_ANNOTATION: "true"},
            },
            "spec": {},
            "status": self._node_status(),
        }

    def _node_status(self) -> JSON:
        now = _now()

        def cond(kind: str, status: bool, reason: str, message: str) -> JSON:
            # lastTransitionTime stays at the kubelet's start (the conditions never change); the heartbeat moves.
            return {**_condition(kind, status, self._since, reason, message), "lastHeartbeatTime": now}

        return {
            "capacity": dict(self.capacity),
            "allocatable": dict(self.capacity),
            "conditions": [
                cond("MemoryPressure", False, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", True, "KubeletReady", "simulated kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.node_ip},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _digest("machine", self.node_name)[:32],
                "systemUUID": _digest("system", self.node_name)[:32],
                "bootID": _digest("boot", self.node_name)[:32],
                "kernelVersion": "simulated",
                "osImage": "Simulated kubelet (substratus tests)",
                "containerRuntimeVersion": "simulated://0.0.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    async def register_node(self) -> JSON:
        """Create the Node, or bring an existing one's labels, capacity and conditions up to date."""
        try:
            await self.client.create(NODES, self.node_body())
            self.counts["node_created"] += 1
            log.info("node_created", node=self.node_name)
        except AlreadyExists:
            await self.client.patch(NODES, self.node_name, {"metadata": {"labels": dict(self.node_labels)}})
        # Create may drop or keep the status depending on the server; patching it is always right.
        return await self.client.patch(NODES, self.node_name, {"status": self._node_status()}, subresource="status")

    async def _register_node_until_done(self) -> None:
        backoff = Backoff(initial=0.2, maximum=5.0)
        while True:
            try:
                await self.register_node()
                return
            except ApiError as exc:
                delay = backoff.next()
                log.warning("node_register_failed", node=self.node_name, code=exc.code, error=exc.message,
                            retry_in=round(delay, 2))  # fmt: skip
                await asyncio.sleep(delay)

    async def heartbeat(self) -> None:
        """Refresh the node's conditions (lastHeartbeatTime); re-register a Node that has gone."""
        try:
            await self.client.patch(NODES, self.node_name, {"status": self._node_status()}, subresource="status")
        except NotFound:
            await self.register_node()
        self.counts["heartbeat"] += 1

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self.heartbeat()
            except ApiError as exc:
                log.warning("node_heartbeat_failed", node=self.node_name, code=exc.code, error=exc.message)
            except Exception:
                log.exception("node_heartbeat_failed", node=self.node_name)

    # ------------------------------------------------------------------------------------------- events
    def _enqueue(self, pod: JSON) -> None:
        if self._queue is not None:
            self._queue.add(object_key(pod))

    def _on_delete(self, pod: JSON) -> None:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        self._bound_at.pop(uid, None)
        self._started_at.pop(uid, None)
        self._enqueue(pod)

    async def _worker(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                await self.sync(key)
            except Conflict as exc:
                log.debug("pod_conflict_retry", pod=key, error=exc.message)
                queue.add_rate_limited(key)
            except Exception as exc:
                self.counts["error"] += 1
                log.exception(
                    "pod_sync_failed", pod=key, node=self.node_name, error=str(exc), retries=queue.num_requeues(key)
                )
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    # ------------------------------------------------------------------------------------------- per pod
    async def sync(self, key: str) -> None:
        """Take the next step for one pod (bind, start, finish, finish deleting), derived from its state."""
        informer, queue = self._informer, self._queue
        assert informer is not None
        assert queue is not None
        pod = informer.get(key)
        if pod is None:
            return
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        uid = str(meta.get("uid", ""))
        node = spec.get("nodeName")
        if meta.get("deletionTimestamp"):
            # deletionGracePeriodSeconds 0: already finished here, the pod waits for its finalizers.
            if node == self.node_name and meta.get("deletionGracePeriodSeconds") != 0:
                await self._finish_deletion(key, pod)
            return
        phase = status.get("phase") or "Pending"
        if phase in ("Succeeded", "Failed"):
            return
        rule = self.rule_for(pod)
        outcome: Outcome = rule.outcome if rule is not None else "succeed"
        if not node:
            if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler":
                return
            reason = self._unschedulable(pod, rule)
            if reason:
                await self._mark_unschedulable(key, pod, reason)
            else:
                await self._bind(key, pod)
            return
        if node != self.node_name or outcome == "pending":
            return
        loop_now = asyncio.get_running_loop().time()
        if phase == "Pending":
            wait = self._bound_at.setdefault(uid, loop_now) + self.run_delay - loop_now
            if wait > 0:
                queue.add_after(key, wait)
                return
            await self._start(key, pod, outcome)
            if spec.get("restartPolicy") in RUN_TO_COMPLETION and outcome != "not-ready":
                self._started_at[uid] = loop_now
                queue.add_after(key, self.finish_delay)
            return
        if phase == "Running" and spec.get("restartPolicy") in RUN_TO_COMPLETION and outcome != "not-ready":
            wait = self._started_at.setdefault(uid, loop_now) + self.finish_delay - loop_now
            if wait > 0:
                queue.add_after(key, wait)
                return
            await self._finish(key, pod, outcome)

    def _unschedulable(self, pod: JSON, rule: Rule | None) -> str | None:
        """Why the scheduler would not place `pod` on this node, or None when it fits."""
        if rule is not None and rule.outcome == "pending" and not rule.bind:
            return "0/1 nodes are available: held Pending by a simulated-kubelet rule."
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        missing = sorted(k for k, v in selector.items() if self.node_labels.get(k) != v)
        if missing:
            return f"0/1 nodes are available: 1 node(s) didn't match node selector ({', '.join(missing)})."
        if _gpu_request(pod) > self.gpus:
            return f"0/1 nodes are available: 1 Insufficient {GPU_RESOURCE}."
        return None

    def _observe(self, obj: JSON) -> None:
        if self._informer is not None and obj.get("kind") == "Pod":
            self._informer.observe(obj)

    async def _bind(self, key: str, pod: JSON) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            await self.client.create(PODS, binding, meta["namespace"], subresource="binding")
        except Conflict as exc:  # already bound (by another simulated scheduler): nothing to do
            log.debug("pod_already_bound", pod=key, error=exc.message)
            return
        except NotFound:
            return
        except Forbidden as exc:
            if not _namespace_terminating(exc):
                raise
            # NamespaceLifecycle admission refuses creates (a Binding is one) in a namespace being deleted;
            # the namespace controller deletes the pod, so there is nothing to retry.
            log.info("pod_not_bound_namespace_terminating", pod=key)
            return
        self.bound[key] = str(meta["uid"])
        self.unschedulable.pop(key, None)
        self.counts["bind"] += 1
        log.info("pod_bound", pod=key, node=self.node_name)

    async def _mark_unschedulable(self, key: str, pod: JSON, message: str) -> None:
        conditions = list((pod.get("status") or {}).get("conditions") or ())
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if current and current.get("status") == "False" and current.get("message") == message:
            return
        others = [c for c in conditions if c.get("type") != "PodScheduled"]
        cond = _condition("PodScheduled", False, _now(), "Unschedulable", message)
        await self._patch_status(pod, {"phase": "Pending", "conditions": [*others, cond]})
        self.unschedulable[key] = message
        self.counts["unschedulable"] += 1
        log.info("pod_unschedulable", pod=key, message=message)

    async def _patch_status(self, pod: JSON, status: JSON) -> None:
        meta = pod["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        try:
            updated = await self.client.patch(PODS, meta["name"], patch, meta["namespace"], subresource="status")
        except NotFound:
            return
        self._observe(updated)

    def _container_id(self, pod: JSON, name: str) -> str:
        return f"containerd://{_digest(str(pod['metadata'].get('uid', '')), name)}"

    def _image_id(self, image: str) -> str:
        repo = image.split("@", 1)[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        return f"docker-pullable://{repo}@sha256:{_digest('image', image)}"

    def _base_container_status(self, pod: JSON, container: JSON) -> JSON:
        name = str(container.get("name", ""))
        image = str(container.get("image", ""))
        return {
            "name": name,
            "image": image,
            "imageID": self._image_id(image),
            "containerID": self._container_id(pod, name),
            "restartCount": 0,
            "lastState": {},
        }

    def _terminated_status(
        self, pod: JSON, container: JSON, exit_code: int, reason: str, *, started_at: str, finished_at: str
    ) -> JSON:
        st = self._base_container_status(pod, container)
        terminated = {"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at,
                      "containerID": st["containerID"]}  # fmt: skip
        return st | {"state": {"terminated": terminated}}

    async def _start(self, key: str, pod: JSON, outcome: Outcome) -> None:
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        now = _now()
        uid = str(meta.get("uid", ""))
        containers = list(spec.get("containers") or ())
        names = ", ".join(str(c.get("name", "")) for c in containers)
        crashing = outcome == "fail" and spec.get("restartPolicy") not in RUN_TO_COMPLETION
        ready = outcome not in ("not-ready", "fail")
        statuses: list[JSON] = []
        for c in containers:
            st = self._base_container_status(pod, c)
            if crashing:
                st |= {
                    "ready": False,
                    "started": False,
                    "restartCount": 1,
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off 10s restarting failed container (simulated)"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now,
                                                 "finishedAt": now, "containerID": st["containerID"]}},
                }  # fmt: skip
            else:
                st |= {"ready": ready, "started": True, "state": {"running": {"startedAt": now}}}
            statuses.append(st)
        init_statuses = [
            self._terminated_status(pod, c, 0, "Completed", started_at=now, finished_at=now) | {"ready": True}
            for c in spec.get("initContainers") or ()
        ]
        not_ready_msg = None if ready else f"containers with unready status: [{names}]"
        not_ready_reason = None if ready else "ContainersNotReady"
        pod_ip = _ip_from(uid, "10.244")
        status: JSON = {
            "phase": "Running",
            "conditions": [
                _condition("Initialized", True, now),
                _condition("Ready", ready, now, not_ready_reason, not_ready_msg),
                _condition("ContainersReady", ready, now, not_ready_reason, not_ready_msg),
                _condition("PodScheduled", True, now),
            ],
            "hostIP": self.node_ip,
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": (pod.get("status") or {}).get("startTime") or now,
            "containerStatuses": statuses,
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        await self._patch_status(pod, status)
        self.started[key] = uid
        self.counts["start"] += 1
        log.info("pod_started", pod=key, node=self.node_name, ready=ready, outcome=outcome)

    async def _finish(self, key: str, pod: JSON, outcome: Outcome) -> None:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        now = _now()
        failed = outcome == "fail"
        phase = "Failed" if failed else "Succeeded"
        exit_code, reason = (1, "Error") if failed else (0, "Completed")
        previous = {s.get("name"): s for s in status.get("containerStatuses") or ()}
        statuses: list[JSON] = []
        for c in spec.get("containers") or ():
            started_at = ((previous.get(c.get("name")) or {}).get("state") or {}).get("running", {}).get("startedAt")
            st = self._terminated_status(pod, c, exit_code, reason, started_at=started_at or now, finished_at=now)
            statuses.append(st | {"ready": False, "started": False})
        conditions = [c for c in status.get("conditions") or () if c.get("type") not in ("Ready", "ContainersReady")]
        conditions += [
            _condition("Ready", False, now, "PodCompleted"),
            _condition("ContainersReady", False, now, "PodCompleted"),
        ]
        await self._patch_status(pod, {"phase": phase, "conditions": conditions, "containerStatuses": statuses})
        self.finished[key] = phase
        self.counts["finish"] += 1
        log.info("pod_finished", pod=key, node=self.node_name, phase=phase)

    async def _finish_deletion(self, key: str, pod: JSON) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(
                PODS, meta["name"], meta["namespace"], propagation_policy=None, uid=meta["uid"], grace_period_seconds=0
            )
        except NotFound:
            return
        except Conflict:  # the uid precondition failed: a new pod of that name; its own events handle it
            return
        if self._informer is not None:
            self._informer.forget(pod)
        self.deleted[key] = str(meta["uid"])
        self.counts["delete"] += 1
        log.info("pod_deleted", pod=key, node=self.node_name)
