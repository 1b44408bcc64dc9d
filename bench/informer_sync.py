"""Informer initial-sync benchmark: time, memory and event-loop lag of filling a cache from a real API server.

One run of this script starts a real control plane (etcd + kube-apiserver, `ControlPlane`), creates the
objects once (bounded concurrency), then measures four ways of loading them (plus one diagnostic), each in a
FRESH subprocess so that the RSS numbers of one variant are not polluted by another:

- `raw`: a bare paginated `Client.list_all` (orjson decode, no store). The ceiling.
- `informer`: `Informer` without a transform (the store strips managedFields), one counting handler.
- `informer_projected`: the same with `projection(...)` (what a controller caches of its children).
- `typed`: kubernetes_asyncio's generated client (`BatchV1Api.list_namespaced_job`, or `CustomObjectsApi` for
  custom resources), paginated the same way: what a typical Python operator uses.
- `informer_gc_paused` (diagnostic): `informer` with the cyclic GC disabled during the sync and the result moved
  to the permanent generation afterwards (`gc.disable()`, sync, `gc.freeze()`, `gc.enable()`, all inside the
  measured window), done by this harness: how much of the informer's time, loop lag and later full-collection
  cost is garbage collection, and what pausing it around a relist would give.

Per variant it records wall seconds from start to synced, CPU seconds, RSS growth (VmRSS after
`gc.collect()`, before/after), peak RSS growth (VmHWM), bytes retained per object (RSS delta / N, and
tracemalloc's count of live Python allocations after a second, traced pass in the same subprocess), the
event-loop lag (a 10 ms ticker's max lateness, target P8) and the cyclic-GC pauses during the sync.

Workloads: `jobs` (batch/v1 Jobs with a realistic pod template, ownerReference and completed status: the
children a Substratus controller caches) and `models` (substratus.ai/v1 Models, fully populated sample
objects with status). Sizes: 1,000 and 10,000 objects each (`--quick`: 100 and 500).

Run: `.venv/bin/python bench/informer_sync.py [--quick] [--reps 3] [--kinds jobs,models]`. Results go to
bench/results/informer_sync.{json,md}. Every comparison is a ratio between variants measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from substratus_controller.jsontypes import JSON

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
VARIANTS = ("raw", "informer", "informer_projected", "typed", "informer_gc_paused")
DIAGNOSTIC = "informer_gc_paused"
PAGE_SIZE = 100  # the informer's default page size; every variant uses the same
CREATE_CONCURRENCY = 32
LAG_INTERVAL = 0.010
MIB = 1024 * 1024
P8_MAX_LAG_MS = 100.0
P6_LIMITS_MIB = {1000: 128.0, 10000: 400.0}


# --------------------------------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """A kind of object to sync: where it lives and what a controller would project of it."""

    name: str
    group: str
    version: str
    plural: str
    kind: str
    projection: tuple[str, ...]

    def namespace(self, n: int) -> str:
        return f"bench-{self.name}-{n}"


WORKLOADS = {
    "jobs": Workload("jobs", "batch", "v1", "jobs", "Job", ("metadata", "status", "spec.template.metadata.labels")),
    "models": Workload("models", "substratus.ai", "v1", "models", "Model", ("metadata", "status")),
}
TIME = "2026-01-02T03:04:05Z"


def job_body(name: str, namespace: str, i: int) -> tuple[JSON, JSON]:
    """A Job as the Substratus model controller creates it (trainer pod, params/artifact volumes), plus the
    status a completed run has."""
    model = f"model-{i:05d}"
    labels = {"app.kubernetes.io/managed-by": "substratus", "substratus.ai/model": model, "role": "run"}
    mounts = [
        {"name": "params", "mountPath": "/content/params.json", "subPath": "params.json"},
        {"name": "artifacts", "mountPath": "/content/artifacts"},
        {"name": "dataset", "mountPath": "/content/data", "readOnly": True},
        {"name": "base-model", "mountPath": "/content/model", "readOnly": True},
    ]

    def bucket(path: str) -> JSON:
        return {
            "driver": "gcsfuse.csi.storage.gke.io",
            "readOnly": path != "artifacts",
            "volumeAttributes": {
                "bucketName": "substratus-artifacts",
                "mountOptions": f"implicit-dirs,only-dir={path}",
            },
        }

    body: JSON = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"substratus.ai/spec-hash": uuid.uuid4().hex},
            "ownerReferences": [
                {
                    "apiVersion": "substratus.ai/v1",
                    "kind": "Model",
                    "name": model,
                    "uid": str(uuid.uuid4()),
                    "controller": True,
                    "blockOwnerDeletion": True,
                },
            ],
        },
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": labels, "annotations": {"kubectl.kubernetes.io/default-container": "model"}},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": "modeller",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": "model",
                            "image": f"registry.example.com/substratus/{model}:v1.2.3",
                            "command": ["python", "main.py", "--flag=1"],
                            "env": [
                                {"name": "PARAM_EPOCHS", "value": "3"},
                                {"name": "PARAM_NAME", "value": "facebook/opt-125m"},
                                {"name": "HF_HOME", "value": "/content/cache"},
                                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                            ],
                            "resources": {
                                "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                                "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"},
                            },
                            "volumeMounts": mounts,
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        }
                    ],
                    "volumes": [
                        {"name": "params", "configMap": {"name": f"{model}-params"}},
                        {"name": "artifacts", "csi": bucket("artifacts")},
                        {"name": "dataset", "csi": bucket("datasets/squad")},
                        {"name": "base-model", "csi": bucket("models/base")},
                    ],
                },
            },
        },
    }
    status: JSON = {
        "conditions": [
            {"type": "Complete", "status": "True", "lastProbeTime": TIME, "lastTransitionTime": TIME},
        ],
        "startTime": TIME,
        "completionTime": TIME,
        "succeeded": 1,
    }
    return body, status


def model_body(name: str, namespace: str, i: int) -> tuple[JSON, JSON]:
    """A fully populated Model (tests/samples.py) and its Ready status."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.samples import VARIANTS as SAMPLE_VARIANTS
    from tests.samples import full_object

    obj = full_object("Model", name, SAMPLE_VARIANTS[i % len(SAMPLE_VARIANTS)])
    status = obj.pop("status")
    obj["metadata"]["namespace"] = namespace
    return obj, status


BODIES: dict[str, Callable[[str, str, int], tuple[JSON, JSON]]] = {"jobs": job_body, "models": model_body}


# --------------------------------------------------------------------------------------------- measuring
def rss_bytes() -> int:
    """Current resident set size (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process image (VmHWM). Not ru_maxrss: on Linux that survives execve and
    so reports the parent's peak in a freshly spawned child."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0]) * 1024
    return max(fields.values())


class LagMonitor:
    """A task that sleeps `interval` in a loop and records how late each wake-up was."""

    def __init__(self, interval: float = LAG_INTERVAL) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._expected = float("inf")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)

    async def stop(self) -> None:
        """Stop ticking; a wake-up that is overdue now (the loop was blocked until just before) counts too."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            overdue = asyncio.get_running_loop().time() - self._expected
            if overdue > 0:
                self.samples.append(overdue)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._expected = loop.time() + self.interval
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.samples.append(max(0.0, now - self._expected))
            self._expected = now + self.interval

    def summary(self) -> JSON:
        s = sorted(self.samples) or [0.0]
        return {
            "ticks": len(self.samples),
            "max_ms": round(s[-1] * 1000, 2),
            "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1000, 2),
            "p50_ms": round(s[len(s) // 2] * 1000, 2),
            "over_100ms": sum(1 for x in s if x > 0.1),
        }


class GcMonitor:
    """Times every cyclic-GC collection while active (gc.callbacks)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def __enter__(self) -> GcMonitor:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> JSON:
        gen2 = [p for g, p in self.pauses if g == 2]
        return {
            "collections": len(self.pauses),
            "gen2_collections": len(gen2),
            "total_ms": round(sum(p for _, p in self.pauses) * 1000, 2),
            "max_ms": round(max((p for _, p in self.pauses), default=0.0) * 1000, 2),
        }


# --------------------------------------------------------------------------------------------- variants
class Loader(Protocol):
    """One way of loading all objects of a namespace into memory."""

    async def open(self) -> None: ...

    async def sync(self) -> Any: ...

    async def settle(self) -> None: ...

    def count(self, retained: Any) -> int: ...

    async def close(self) -> None: ...


class RawLoader:
    """`Client.list_all`: decode only, no store."""

    def __init__(self, kubeconfig: str, workload: Workload, namespace: str) -> None:
        from substratus_controller.runtime.resource import Resource

        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.resource = Resource(workload.group, workload.version, workload.plural, workload.kind)
        self.client: Any = None

    async def open(self) -> None:
        from substratus_controller.runtime.client import Client

        self.client = await Client.connect(self.kubeconfig)
        await self.client.list(self.resource, self.namespace, limit=1)  # connection + TLS set up

    async def sync(self) -> Any:
        items, _ = await self.client.list_all(self.resource, self.namespace, page_size=PAGE_SIZE)
        return items

    async def settle(self) -> None:
        pass

    def count(self, retained: Any) -> int:
        return len(retained)

    async def close(self) -> None:
        await self.client.close()


class InformerLoader(RawLoader):
    """`Informer.run()` until `wait_synced()`; the store is what is retained."""

    def __init__(self, kubeconfig: str, workload: Workload, namespace: str, *, projected: bool) -> None:
        super().__init__(kubeconfig, workload, namespace)
        self.paths = workload.projection if projected else None
        self.task: asyncio.Task[None] | None = None
        self.added = 0

    def _on_add(self, obj: JSON) -> None:
        self.added += 1

    async def sync(self) -> Any:
        from substratus_controller.runtime.informer import FuncHandler, Informer
        from substratus_controller.runtime.store import projection

        transform = projection(*self.paths) if self.paths else None
        informer = Informer(
            self.client, self.resource, namespace=self.namespace, transform=transform, page_size=PAGE_SIZE
        )
        self.added = 0
        informer.add_handler(FuncHandler(add=self._on_add))
        self.task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        return informer.store

    async def settle(self) -> None:
        """Stop the watch that follows the sync (outside the timed section)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    def count(self, retained: Any) -> int:
        if self.added != len(retained):
            raise AssertionError(f"handler saw {self.added} adds for {len(retained)} stored objects")
        return len(retained)


class TypedLoader:
    """kubernetes_asyncio's generated client, paginated like the others."""

    def __init__(self, kubeconfig: str, workload: Workload, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.workload = workload
        self.namespace = namespace
        self.api_client: Any = None
        self._page: Callable[[str | None, int], Awaitable[tuple[list[Any], str | None]]] | None = None

    async def open(self) -> None:
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        await config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg, persist_config=False)
        self.api_client = client.ApiClient(configuration=cfg)
        w, ns = self.workload, self.namespace
        if w.group == "batch":
            batch = client.BatchV1Api(self.api_client)

            async def page(token: str | None, limit: int) -> tuple[list[Any], str | None]:
                if token:
                    resp = await batch.list_namespaced_job(ns, limit=limit, _continue=token)
                else:
                    resp = await batch.list_namespaced_job(ns, limit=limit)
                return list(resp.items), resp.metadata._continue

        else:
            custom = client.CustomObjectsApi(self.api_client)

            async def page(token: str | None, limit: int) -> tuple[list[Any], str | None]:
                args = (w.group, w.version, ns, w.plural)
                if token:
                    resp = await custom.list_namespaced_custom_object(*args, limit=limit, _continue=token)
                else:
                    resp = await custom.list_namespaced_custom_object(*args, limit=limit)
                return list(resp["items"]), resp["metadata"].get("continue")

        self._page = page
        await page(None, 1)  # connection + TLS set up

    async def sync(self) -> Any:
        assert self._page is not None
        items: list[Any] = []
        token: str | None = None
        while True:
            got, token = await self._page(token, PAGE_SIZE)
            items.extend(got)
            if not token:
                return items

    async def settle(self) -> None:
        pass

    def count(self, retained: Any) -> int:
        return len(retained)

    async def close(self) -> None:
        await self.api_client.close()


def make_loader(variant: str, kubeconfig: str, workload: Workload, namespace: str) -> Loader:
    if variant == "raw":
        return RawLoader(kubeconfig, workload, namespace)
    if variant in ("informer", "informer_projected", DIAGNOSTIC):
        return InformerLoader(kubeconfig, workload, namespace, projected=variant == "informer_projected")
    if variant == "typed":
        return TypedLoader(kubeconfig, workload, namespace)
    raise ValueError(f"unknown variant {variant!r}")


async def measure(variant: str, *, kubeconfig: str, workload: Workload, namespace: str, n: int, rss_start: int) -> JSON:
    """Runs in the child process: one timed pass, then one tracemalloc pass."""
    started = time.perf_counter()
    if variant == "typed":
        import kubernetes_asyncio.client  # noqa: F401
    else:
        import substratus_controller.runtime.informer  # noqa: F401
    import_seconds = time.perf_counter() - started
    gc.collect()
    rss_imported = rss_bytes()
    gc_tracked = len(gc.get_objects())  # what every full (gen2) collection has to traverse, before any data

    loader = make_loader(variant, kubeconfig, workload, namespace)
    await loader.open()
    gc.collect()
    rss_before, peak_before = rss_bytes(), peak_rss_bytes()

    lag = LagMonitor()
    await lag.start()
    with GcMonitor() as gcmon:
        if variant == DIAGNOSTIC:
            gc.disable()
        cpu0, t0 = time.process_time(), time.perf_counter()
        retained = await loader.sync()
        if variant == DIAGNOSTIC:
            gc.freeze()  # the cache (and everything else alive) leaves the generations full collections traverse
            gc.enable()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await lag.stop()
    await loader.settle()
    count = loader.count(retained)
    if count != n:
        raise AssertionError(f"{variant}: loaded {count} objects, expected {n}")
    gc.collect()
    rss_after, peak_after = rss_bytes(), peak_rss_bytes()
    # What any later full collection costs while the cache is alive (a steady-state loop stall).
    t_gc = time.perf_counter()
    gc.collect()
    full_gc_seconds = time.perf_counter() - t_gc
    gc_tracked_after = len(gc.get_objects())
    gc.unfreeze()
    del retained
    gc.collect()

    # Second pass, traced: bytes of live Python allocations that the loaded objects hold.
    tracemalloc.start()
    retained = await loader.sync()
    await loader.settle()
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del retained
    await loader.close()

    rss_delta = rss_after - rss_before
    return {
        "variant": variant,
        "kind": workload.name,
        "n": n,
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu, 4),
        "objects_per_second": round(n / seconds, 1),
        "import_seconds": round(import_seconds, 3),
        "rss_start_mib": round(rss_start / MIB, 2),
        "rss_imported_mib": round(rss_imported / MIB, 2),
        "rss_before_mib": round(rss_before / MIB, 2),
        "rss_after_mib": round(rss_after / MIB, 2),
        "rss_delta_mib": round(rss_delta / MIB, 2),
        "peak_rss_delta_mib": round((peak_after - peak_before) / MIB, 2),
        "bytes_per_object_rss": round(rss_delta / n),
        "bytes_per_object_traced": round(traced / n),
        "gc_tracked_objects_after_imports": gc_tracked,
        "gc_tracked_objects_after_sync": gc_tracked_after,
        "full_gc_ms_after_sync": round(full_gc_seconds * 1000, 1),
        "loop_lag": lag.summary(),
        "gc": gcmon.summary(),
    }


def child_main(args: argparse.Namespace) -> None:
    rss_start = rss_bytes()
    result = asyncio.run(
        measure(
            args.variant,
            kubeconfig=args.kubeconfig,
            workload=WORKLOADS[args.kind],
            namespace=args.namespace,
            n=args.n,
            rss_start=rss_start,
        )
    )
    Path(args.out).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------- setup
async def populate(kubeconfig: Path, workload: Workload, sizes: Iterable[int]) -> JSON:
    """Create `n` objects (with status) in `workload.namespace(n)` for each size; bounded concurrency."""
    from substratus_controller.runtime.client import Client
    from substratus_controller.runtime.errors import AlreadyExists
    from substratus_controller.runtime.resource import Resource
    from substratus_controller.runtime.resources import NAMESPACES

    res = Resource(workload.group, workload.version, workload.plural, workload.kind)
    build = BODIES[workload.name]
    info: JSON = {}
    async with await Client.connect(kubeconfig, timeout=60) as client:
        for n in sizes:
            ns = workload.namespace(n)
            with contextlib.suppress(AlreadyExists):
                await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            pending = iter(range(n))

            async def worker(ns: str = ns, pending: Iterable[int] = pending) -> None:
                for i in pending:
                    name = f"{workload.name[:-1]}-{i:05d}"
                    body, status = build(name, ns, i)
                    await client.create(res, body, ns)
                    await client.patch(res, name, {"status": status}, ns, subresource="status")

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))
            seconds = time.perf_counter() - t0
            # Warm the API server's path for this namespace and record what one object weighs on the wire.
            items, _ = await client.list_all(res, ns, page_size=PAGE_SIZE)
            assert len(items) == n, (ns, len(items))
            import orjson

            wire = sum(len(orjson.dumps(o)) for o in items) / n
            for o in items:
                o["metadata"].pop("managedFields", None)
            stripped = sum(len(orjson.dumps(o)) for o in items) / n
            info[str(n)] = {
                "namespace": ns,
                "create_seconds": round(seconds, 2),
                "creates_per_second": round(n / seconds, 1),
                "json_bytes_per_object": round(wire),
                "json_bytes_per_object_without_managed_fields": round(stripped),
            }
            print(f"  created {n} {workload.name} in {seconds:.1f}s ({n / seconds:.0f}/s)", flush=True)
    return info


def install_crds(cp: Any) -> None:
    """Create the Substratus CRDs and wait until they are served."""
    from substratus_controller.api.v1.crd import build_crds

    for crd in build_crds():
        cp.request("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", method="POST", body=crd)
    deadline = time.monotonic() + 60
    for crd in build_crds():
        plural = crd["spec"]["names"]["plural"]
        while True:
            try:
                cp.request(f"/apis/substratus.ai/v1/{plural}?limit=1")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def run_child(variant: str, kubeconfig: Path, workload: Workload, n: int) -> JSON:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [
            sys.executable, __file__, "--variant", variant, "--kind", workload.name, "--n", str(n),
            "--namespace", workload.namespace(n), "--kubeconfig", str(kubeconfig), "--out", out.name,
        ]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{variant} {workload.name} n={n} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return dict(json.loads(Path(out.name).read_text()))


# --------------------------------------------------------------------------------------------- reporting
def machine_info(cp_version: JSON) -> JSON:
    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return "unknown"

    cpu = next((ln.split(":", 1)[1].strip() for ln in read("/proc/cpuinfo").splitlines() if "model name" in ln), "?")
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "debian": read("/etc/debian_version"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kube_apiserver": cp_version.get("gitVersion", "?"),
        "libraries": {p: metadata.version(p) for p in ("aiohttp", "orjson", "kubernetes_asyncio")},
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "src_uncommitted": _git("status", "--porcelain", "--", "src").splitlines(),
    }


def _git(*argv: str) -> str:
    """The runtime under test may be edited between runs: record exactly which code was measured."""
    try:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.rstrip("\n")


def summarize(runs: list[JSON]) -> JSON:
    """Medians over repetitions per (kind, n, variant); the worst loop lag over repetitions."""
    groups: dict[tuple[str, int, str], list[JSON]] = {}
    for r in runs:
        groups.setdefault((r["kind"], r["n"], r["variant"]), []).append(r)
    out: JSON = {}
    for (kind, n, variant), rs in sorted(groups.items()):

        def med(key: str, rs: list[JSON] = rs) -> float:
            return float(statistics.median(r[key] for r in rs))

        out.setdefault(kind, {}).setdefault(str(n), {})[variant] = {
            "reps": len(rs),
            "seconds": round(med("seconds"), 4),
            "seconds_min": min(r["seconds"] for r in rs),
            "seconds_max": max(r["seconds"] for r in rs),
            "cpu_seconds": round(med("cpu_seconds"), 4),
            "rss_imported_mib": round(med("rss_imported_mib"), 1),
            "gc_tracked_objects_after_imports": round(med("gc_tracked_objects_after_imports")),
            "gc_tracked_objects_after_sync": round(med("gc_tracked_objects_after_sync")),
            "full_gc_ms_after_sync": round(med("full_gc_ms_after_sync"), 1),
            "rss_after_mib": round(med("rss_after_mib"), 1),
            "rss_delta_mib": round(med("rss_delta_mib"), 2),
            "peak_rss_delta_mib": round(med("peak_rss_delta_mib"), 2),
            "bytes_per_object_rss": round(med("bytes_per_object_rss")),
            "bytes_per_object_traced": round(med("bytes_per_object_traced")),
            "loop_lag_max_ms": max(r["loop_lag"]["max_ms"] for r in rs),
            "loop_lag_max_ms_median": round(float(statistics.median(r["loop_lag"]["max_ms"] for r in rs)), 2),
            "loop_lag_p99_ms": round(float(statistics.median(r["loop_lag"]["p99_ms"] for r in rs)), 2),
            "gc_gen2_collections": round(float(statistics.median(r["gc"]["gen2_collections"] for r in rs))),
            "gc_max_pause_ms": max(r["gc"]["max_ms"] for r in rs),
            "gc_total_ms": round(float(statistics.median(r["gc"]["total_ms"] for r in rs)), 1),
        }
    return out


def ratios(summary: JSON) -> JSON:
    """The ratios the targets are stated in: informer vs RAW (ceiling) and vs the typed client."""

    def r(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    out: JSON = {}
    for kind, by_n in summary.items():
        for n, v in by_n.items():
            raw, inf, proj, typed, paused = (v[k] for k in VARIANTS)
            out.setdefault(kind, {})[n] = {
                "time_informer_over_raw": r(inf["seconds"], raw["seconds"]),
                "time_projected_over_raw": r(proj["seconds"], raw["seconds"]),
                "time_informer_over_typed": r(inf["seconds"], typed["seconds"]),
                "time_projected_over_typed": r(proj["seconds"], typed["seconds"]),
                "rss_informer_over_raw": r(inf["rss_delta_mib"], raw["rss_delta_mib"]),
                "rss_informer_over_typed": r(inf["rss_delta_mib"], typed["rss_delta_mib"]),
                "rss_projected_over_typed": r(proj["rss_delta_mib"], typed["rss_delta_mib"]),
                "bytes_projected_over_informer": r(proj["bytes_per_object_traced"], inf["bytes_per_object_traced"]),
                "bytes_informer_over_raw": r(inf["bytes_per_object_traced"], raw["bytes_per_object_traced"]),
                "bytes_informer_over_typed": r(inf["bytes_per_object_traced"], typed["bytes_per_object_traced"]),
                "cpu_informer_over_raw": r(inf["cpu_seconds"], raw["cpu_seconds"]),
                "cpu_projected_over_raw": r(proj["cpu_seconds"], raw["cpu_seconds"]),
                "cpu_informer_over_typed": r(inf["cpu_seconds"], typed["cpu_seconds"]),
                "time_gc_paused_over_informer": r(paused["seconds"], inf["seconds"]),
                "cpu_gc_paused_over_informer": r(paused["cpu_seconds"], inf["cpu_seconds"]),
            }
    return out


def targets(summary: JSON) -> JSON:
    """P8 (loop lag during a 10,000-object relist) and P6 context (absolute RSS after the informer sync)."""
    out: JSON = {"P8": {}, "P6_context": {}}
    for kind, by_n in summary.items():
        for n, v in by_n.items():
            for variant in ("informer", "informer_projected", DIAGNOSTIC):
                lag = v[variant]["loop_lag_max_ms"]
                if int(n) >= 10000:
                    out["P8"][f"{kind}/{n}/{variant}"] = {
                        "max_lag_ms": lag,
                        "max_lag_ms_median_of_runs": v[variant]["loop_lag_max_ms_median"],
                        "met": lag <= P8_MAX_LAG_MS,
                    }
                if variant == DIAGNOSTIC:
                    continue
                limit = P6_LIMITS_MIB.get(int(n))
                out["P6_context"][f"{kind}/{n}/{variant}"] = {
                    "rss_after_sync_mib": v[variant]["rss_after_mib"],
                    "rss_after_imports_mib": v[variant]["rss_imported_mib"],
                    "gc_tracked_objects_after_imports": v[variant]["gc_tracked_objects_after_imports"],
                    "limit_mib_whole_operator": limit,
                }
    return out


TIME_HEADER = (
    "N", "variant", "sync s", "min-max s", "CPU s", "obj/s", "lag max ms (median / worst)", "lag p99 ms", "gen2 GCs",
    "GC total ms", "GC max pause ms", "full GC after sync ms",
)  # fmt: skip
MEMORY_HEADER = (
    "N", "variant", "RSS after imports MiB", "RSS delta MiB", "peak delta MiB", "RSS after MiB", "bytes/obj (RSS)",
    "bytes/obj (traced)", "GC-tracked objects after sync",
)  # fmt: skip
RATIO_COLUMNS = {
    "time_informer_over_raw": "time inf/RAW",
    "time_projected_over_raw": "time proj/RAW",
    "time_informer_over_typed": "time inf/typed",
    "time_projected_over_typed": "time proj/typed",
    "cpu_informer_over_raw": "CPU inf/RAW",
    "cpu_projected_over_raw": "CPU proj/RAW",
    "cpu_informer_over_typed": "CPU inf/typed",
    "rss_informer_over_raw": "RSS delta inf/RAW",
    "rss_informer_over_typed": "RSS delta inf/typed",
    "rss_projected_over_typed": "RSS delta proj/typed",
    "bytes_informer_over_raw": "bytes inf/RAW",
    "bytes_informer_over_typed": "bytes inf/typed",
    "bytes_projected_over_informer": "bytes proj/inf",
    "time_gc_paused_over_informer": "time gc_paused/inf",
    "cpu_gc_paused_over_informer": "CPU gc_paused/inf",
}


def _table(header: list[str], rows: list[list[str]], *, text_columns: tuple[int, ...] = (1,)) -> list[str]:
    align = ["---" if i in text_columns else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|", *("| " + " | ".join(r) + " |" for r in rows)]


def render_markdown(doc: JSON) -> str:
    m, cfg = doc["machine"], doc["config"]
    lines = [
        "# Informer initial sync",
        "",
        f"Generated by `bench/informer_sync.py{' --quick' if cfg['quick'] else ''}` on {m['date']} "
        f"({cfg['total_seconds']:.0f} s). Machine: {m['nproc']} CPUs ({m['cpu']}), Debian {m['debian']}, kernel "
        f"{m['kernel']}, Python {m['python']}, kube-apiserver {m['kube_apiserver']} with etcd on the same machine; "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
        + ".",
        "",
        f"Each cell is the median of {cfg['reps']} runs, each in a fresh subprocess (lag max: median and worst run; "
        f"GC max pause: worst run). Page size {PAGE_SIZE} for every variant. `{DIAGNOSTIC}` is a diagnostic, not a "
        "product configuration: the informer with the cyclic GC paused by the harness during the sync and the "
        "result frozen (`gc.freeze()`) afterwards. See bench/README.md for the column definitions. Wall times "
        "include the API server's work and any other load on the machine (1-minute load average before each "
        f"measurement: {cfg['loadavg_1m_min']:.1f}-{cfg['loadavg_1m_max']:.1f} on {m['nproc']} CPUs); CPU seconds "
        "and the CPU ratios are the client's own cost and are steadier.",
        "",
    ]
    for kind, by_n in doc["summary"].items():
        w = WORKLOADS[kind]
        time_rows, mem_rows = [], []
        for n, v in by_n.items():
            for variant in VARIANTS:
                s = v[variant]
                time_rows.append([
                    f"{int(n):,}", variant, f"{s['seconds']:.3f}", f"{s['seconds_min']:.2f}-{s['seconds_max']:.2f}",
                    f"{s['cpu_seconds']:.2f}", f"{int(n) / s['seconds']:,.0f}",
                    f"{s['loop_lag_max_ms_median']:.0f} / {s['loop_lag_max_ms']:.0f}",
                    f"{s['loop_lag_p99_ms']:.0f}", f"{s['gc_gen2_collections']}", f"{s['gc_total_ms']:.0f}",
                    f"{s['gc_max_pause_ms']:.0f}", f"{s['full_gc_ms_after_sync']:.0f}",
                ])  # fmt: skip
                mem_rows.append([
                    f"{int(n):,}", variant, f"{s['rss_imported_mib']:.1f}", f"{s['rss_delta_mib']:.1f}",
                    f"{s['peak_rss_delta_mib']:.1f}", f"{s['rss_after_mib']:.1f}", f"{s['bytes_per_object_rss']:,}",
                    f"{s['bytes_per_object_traced']:,}", f"{s['gc_tracked_objects_after_sync']:,}",
                ])  # fmt: skip
        ratio_rows = [[f"{int(n):,}", *(str(q[k]) for k in RATIO_COLUMNS)] for n, q in doc["ratios"][kind].items()]
        wire = "; ".join(
            f"N={int(n):,}: {o['json_bytes_per_object']:,} B with managedFields, "
            f"{o['json_bytes_per_object_without_managed_fields']:,} B without "
            f"(created at {o['creates_per_second']:.0f}/s, create + status write, {CREATE_CONCURRENCY} in flight)"
            for n, o in doc["objects"][kind].items()
        )
        lines += [
            f"## {w.kind}s (`{kind}`)",
            "",
            f"Projection: `projection({', '.join(repr(p) for p in w.projection)})`. JSON per object as served: {wire}.",
            "",
            "### Time, event-loop lag and garbage collection",
            "",
            *_table(list(TIME_HEADER), time_rows),
            "",
            "### Memory",
            "",
            *_table(list(MEMORY_HEADER), mem_rows),
            "",
            "### Ratios (time and memory: < 1 favours the numerator)",
            "",
            *_table(["N", *RATIO_COLUMNS.values()], ratio_rows, text_columns=()),
            "",
        ]
    t = doc["targets"]
    lines += ["## Targets", "", "**P8** (event-loop lag max <= 100 ms during a 10,000-object relist):", ""]
    if t["P8"]:
        for key, val in t["P8"].items():
            note = " (diagnostic)" if key.endswith(DIAGNOSTIC) else ""
            lines.append(
                f"- {key}{note}: worst run {val['max_lag_ms']:.0f} ms (median of runs "
                f"{val['max_lag_ms_median_of_runs']:.0f} ms) -> {'met' if val['met'] else 'NOT met'}"
            )
    else:
        lines.append("- not measured (no N >= 10,000 in this run)")
    lines += [
        "",
        "**P6 context** (the limits are for the whole operator: 1,000 objects with children <= 128 MiB, 10,000 "
        "<= 400 MiB; these numbers are one informer of one kind alone):",
        "",
    ]
    for key, val in t["P6_context"].items():
        limit = val["limit_mib_whole_operator"]
        lines.append(
            f"- {key}: {val['rss_after_sync_mib']:.1f} MiB after sync (after imports, before any object: "
            f"{val['rss_after_imports_mib']:.1f} MiB, {val['gc_tracked_objects_after_imports']:,} GC-tracked objects)"
            + (f"; limit {limit:.0f} MiB" if limit else "")
        )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- main
def parent_main(args: argparse.Namespace) -> None:
    from substratus_controller.testing import ControlPlane

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([100, 500] if args.quick else [1000, 10000])
    reps = args.reps or (1 if args.quick else 3)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    runs: list[JSON] = []
    objects: JSON = {}
    started = time.perf_counter()
    with ControlPlane() as cp:
        print(f"control plane up at {cp.url}", flush=True)
        machine = machine_info(cp.request("/version"))
        if "models" in kinds:
            install_crds(cp)
        for kind in kinds:
            objects[kind] = asyncio.run(populate(cp.kubeconfig, WORKLOADS[kind], sizes))
        for rep in range(reps):
            for kind in kinds:
                for n in sizes:
                    # Rotate the order each repetition so no variant always runs first or last.
                    order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
                    for variant in order:
                        load = os.getloadavg()[0]
                        r = run_child(variant, cp.kubeconfig, WORKLOADS[kind], n)
                        r["rep"] = rep
                        r["loadavg_1m_before"] = round(load, 2)
                        runs.append(r)
                        print(
                            f"  rep {rep} {kind:6} n={n:<6} {variant:18} {r['seconds']:7.3f}s "
                            f"rss +{r['rss_delta_mib']:6.1f} MiB  {r['bytes_per_object_traced']:6} B/obj traced  "
                            f"lag max {r['loop_lag']['max_ms']:6.1f} ms",
                            flush=True,
                        )
    summary = summarize(runs)
    doc: JSON = {
        "benchmark": "informer_sync",
        "machine": machine,
        "config": {
            "quick": args.quick,
            "sizes": sizes,
            "reps": reps,
            "kinds": kinds,
            "page_size": PAGE_SIZE,
            "create_concurrency": CREATE_CONCURRENCY,
            "lag_interval_ms": LAG_INTERVAL * 1000,
            "total_seconds": round(time.perf_counter() - started, 1),
            "loadavg_1m_min": min(r["loadavg_1m_before"] for r in runs),
            "loadavg_1m_max": max(r["loadavg_1m_before"] for r in runs),
        },
        "objects": objects,
        "summary": summary,
        "ratios": ratios(summary),
        "targets": targets(summary),
        "runs": runs,
    }
    # A smoke test must not overwrite the recorded results.
    write(doc, Path(args.out_dir or (Path(tempfile.gettempdir()) / "substratus-bench" if args.quick else RESULTS_DIR)))


def write(doc: JSON, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "informer_sync.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out_dir / "informer_sync.md").write_text(render_markdown(doc))
    print(f"wrote {out_dir / 'informer_sync.md'} and informer_sync.json", flush=True)


def rerender(path: Path) -> None:
    """Recompute the summary, ratios, targets and markdown from the runs recorded in `path` (no measuring)."""
    doc = json.loads(path.read_text())
    doc["summary"] = summarize(doc["runs"])
    doc["ratios"] = ratios(doc["summary"])
    doc["targets"] = targets(doc["summary"])
    write(doc, path.parent)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="small sizes (100, 500) and one repetition")
    p.add_argument("--sizes", help="comma-separated object counts (default 1000,10000)")
    p.add_argument("--reps", type=int, help="repetitions per variant (default 3, --quick 1)")
    p.add_argument("--kinds", default="jobs,models", help="comma-separated workloads: jobs, models")
    p.add_argument(
        "--out-dir", help="where to write informer_sync.{json,md} (default bench/results; --quick: a temp dir)"
    )
    p.add_argument("--rerender", metavar="JSON", help="rebuild the reports from a results JSON without measuring")
    # Internal: one measurement in this (fresh) process.
    p.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--kind", choices=sorted(WORKLOADS), help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--namespace", help=argparse.SUPPRESS)
    p.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant:
        child_main(args)
    elif args.rerender:
        rerender(Path(args.rerender))
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
