"""The benchmark suite (issue 14): the controller side by side with RAW and kopf, and the P targets.

One run starts its own control plane (etcd + kube-apiserver, no kubelet: the Jobs never run) and measures,
in one namespace per variant and size so that nothing is shared:

- burst (P1, P2, P6): N Models created by the benchmark, 20 creates in flight; the time until every Model
  has status.conditions, seen by one watch in the benchmark process, for
  - `raw`: the benchmark itself writing, per Model, what the controller writes (bench/workload.py: the
    ServiceAccount, params ConfigMap and Job by server-side apply, then the status), 20 Models in flight,
    no informer, queue or reads: the ceiling on the same HTTP stack;
  - `controller`: `substratus-controller run` through its CLI with its defaults (`--namespace` only, so
    that it sees just its namespace);
  - `kopf`: bench/kopf_operator.py under `kopf run` (kopf 1.45, tuned per its docs), at the kopf sizes;
  plus the controller's writes and reads per object from its own /metrics, and its RSS (VmRSS) idle after
  the caches synced and after the burst.
- steady state (P3, P4, P7, P8), at the largest size: every Job is marked Complete (so every Model becomes
  Ready); 20 annotation changes a second for `--churn-seconds`, and the queue duration p50/p99 from
  workqueue_queue_duration_seconds (bucket bounds); then the controller is restarted with `--sync-period
  10`: caches synced and queue drained times, writes during the drain and during one full resync,
  resourceVersions before and after (0 changes), the worst event-loop lag of the relist and the drain
  (event_loop_lag_max_seconds).
- create -> Ready (P5) is not measured here (it needs the kube-controller-manager's Job controller and a
  kubelet): the e2e fast tier has them; see bench/README.md.

Results: bench/results/suite.json (everything) and suite.md (the machine, the tables, every P target with
its measured value and pass/short). `--quick` runs small sizes into a temporary directory (the CI smoke
run). Ratios, not absolute times, are the comparison: the machine is shared with the API server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import first_writes, model_manifest, render_context  # noqa: E402
from substratus_controller.jsontypes import JSON  # noqa: E402
from substratus_controller.resources import MODELS  # noqa: E402
from substratus_controller.runtime import resources as k8s  # noqa: E402
from substratus_controller.runtime.client import Client  # noqa: E402
from substratus_controller.testing.controlplane import ControlPlane  # noqa: E402
from substratus_controller.testing.stack import ControllerProcess  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
IN_FLIGHT = 20
WRITES = ("POST", "PATCH", "PUT", "DELETE")
FIELD_MANAGER = "raw-bench"

# ------------------------------------------------------------------------------------------------ watching


class ConditionWatch:
    """Counts the Models of a namespace that have status.conditions (and those Ready), from one watch."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self.with_conditions: set[str] = set()
        self.ready: set[str] = set()
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _see(self, obj: JSON) -> None:
        status = obj.get("status") or {}
        name = obj["metadata"]["name"]
        if status.get("conditions"):
            self.with_conditions.add(name)
        if status.get("ready"):
            self.ready.add(name)
        self.changed.set()

    async def start(self) -> None:
        listed = await self.client.list(MODELS, self.namespace)
        for obj in listed["items"]:
            self._see(obj)
        self._task = asyncio.create_task(self._run(listed["metadata"]["resourceVersion"]))

    async def _run(self, rv: str) -> None:
        while True:
            async for event in self.client.watch(MODELS, self.namespace, resource_version=rv):
                if event.type in ("ADDED", "MODIFIED"):
                    self._see(event.object)
                rv = event.object.get("metadata", {}).get("resourceVersion", rv)

    async def until(self, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not within {timeout:g}s ({len(self.with_conditions)} with conditions)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


# ------------------------------------------------------------------------------------------------ helpers
async def bounded(n: int, work: Callable[[int], Awaitable[Any]], in_flight: int = IN_FLIGHT) -> None:
    """Run work(0..n-1) with at most `in_flight` at once."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(min(in_flight, n))))


async def create_models(client: Client, namespace: str, n: int) -> None:
    await bounded(n, lambda i: client.create(MODELS, model_manifest(f"m-{i:05d}", namespace, i)))


async def new_namespace(client: Client, prefix: str) -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await client.create(k8s.NAMESPACES, {"metadata": {"name": ns}})
    return ns


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def metric(text: str, metric_name: str, **labels: str) -> float:
    """The sum of the samples of `metric_name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric_name):
            continue
        head, _, value = line.rpartition(" ")
        if head != metric_name and not head.startswith(metric_name + "{"):
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def requests_by_method(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in re.finditer(r"^rest_client_requests_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        method = re.search(r'method="([A-Z]+)"', m.group(1))
        if method:
            out[method.group(1)] = out.get(method.group(1), 0.0) + float(m.group(2))
    return out


def quantile_bound(before: str, after: str, name: str, q: float) -> float:
    """The upper bound of the histogram bucket holding quantile `q` of the observations between scrapes."""

    def buckets(text: str) -> dict[float, float]:
        out: dict[float, float] = {}
        for m in re.finditer(rf"^{name}_bucket\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
            le = re.search(r'le="([^"]+)"', m.group(1))
            if le:
                bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
                out[bound] = out.get(bound, 0.0) + float(m.group(2))
        return out

    a, b = buckets(before), buckets(after)
    counts = sorted((bound, b[bound] - a.get(bound, 0.0)) for bound in b)
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return float("nan")
    return next(bound for bound, cum in counts if cum >= q * total)


async def poll(check: Callable[[], bool], interval: float = 0.2, timeout: float = 3600) -> None:
    """Until `check()` (a scrape of another process: there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g}s")
        await asyncio.sleep(interval)


async def resource_versions(client: Client, namespace: str) -> dict[str, str]:
    out = {}
    for res in (MODELS, k8s.JOBS, k8s.CONFIGMAPS, k8s.SERVICEACCOUNTS):
        for item in (await client.list_all(res, namespace))[0]:
            out[f"{res.plural}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


# ------------------------------------------------------------------------------------------------ variants
async def burst(client: Client, ns: str, n: int, write: Callable[[], Awaitable[Any]]) -> tuple[float, ConditionWatch]:
    """Seconds from starting `write` (which creates the N Models of `ns`) until all N have status.conditions,
    and the watch that saw it (still running: the caller stops it)."""
    watch = ConditionWatch(client, ns)
    await watch.start()
    started = time.monotonic()
    await write()
    await watch.until(lambda: len(watch.with_conditions) >= n, timeout=3600)
    return time.monotonic() - started, watch


async def burst_raw(client: Client, n: int, artifacts: str) -> JSON:
    ns = await new_namespace(client, f"raw-{n}")
    ctx = render_context(artifacts)
    writes = 0

    async def one(i: int) -> None:
        nonlocal writes
        created = await client.create(MODELS, model_manifest(f"m-{i:05d}", ns, i))
        children, status = first_writes(created, ctx)
        for res, body in children:
            await client.apply(res, body, field_manager=FIELD_MANAGER, force=True)
        writes += len(children) + 2  # the create, the children, the status
        meta = {"name": created["metadata"]["name"], "namespace": ns}
        await client.apply_status(MODELS, {"apiVersion": created["apiVersion"], "kind": "Model", "metadata": meta,
                                           "status": status}, field_manager=FIELD_MANAGER, force=True)  # fmt: skip

    seconds, watch = await burst(client, ns, n, lambda: bounded(n, one))
    await watch.stop()
    return {"variant": "raw", "n": n, "seconds": seconds, "per_s": n / seconds, "writes_per_object": writes / n}


async def burst_controller(
    client: Client, cp: ControlPlane, n: int, artifacts: str, workdir: Path, steady: bool, churn_seconds: float
) -> JSON:
    ns = await new_namespace(client, f"ctl-{n}")
    args = [f"--namespace={ns}", f"--artifact-bucket-url={artifacts}", "--registry-url=localhost:5000",
            "--upload-bind-address=0"]  # fmt: skip
    log = workdir / f"controller-{ns}.log"
    proc = ControllerProcess(cp.kubeconfig, log=log, args=args, env={"LOG_LEVEL": "warning"})
    await proc.start()
    try:
        assert proc.proc is not None
        await asyncio.sleep(2)
        idle = rss_mib(proc.proc.pid)
        before = scrape(proc.metrics_port)
        seconds, watch = await burst(client, ns, n, lambda: create_models(client, ns, n))
        await asyncio.sleep(2)
        after = scrape(proc.metrics_port)
        rss = rss_mib(proc.proc.pid)
        a, b = requests_by_method(before), requests_by_method(after)
        delta = {m: b.get(m, 0.0) - a.get(m, 0.0) for m in b}
        reconciles = metric(after, "controller_runtime_reconcile_total") - metric(
            before, "controller_runtime_reconcile_total"
        )
        out: JSON = {
            "variant": "controller", "n": n, "seconds": seconds, "per_s": n / seconds,
            "writes_per_object": sum(delta.get(m, 0.0) for m in WRITES) / n,
            "requests_per_object": {m: v / n for m, v in sorted(delta.items())},
            "gets_per_reconcile": delta.get("GET", 0.0) / max(reconciles, 1.0),
            "reconciles": reconciles, "rss_idle_mib": idle, "rss_after_mib": rss,
        }  # fmt: skip
        if steady:
            out["steady"] = await steady_state(client, cp, proc, ns, n, args, workdir, watch, churn_seconds)
        await watch.stop()
    finally:
        await proc.stop()  # also when a phase fails: no controller outlives its run
    return out


async def complete_jobs(client: Client, ns: str, n: int) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"status": {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}],
                         "succeeded": 1, "startTime": now, "completionTime": now}}  # fmt: skip
    jobs = [j["metadata"]["name"] for j in (await client.list_all(k8s.JOBS, ns))[0]]
    await bounded(len(jobs), lambda i: client.patch(k8s.JOBS, jobs[i], status, ns, subresource="status"))


async def steady_state(
    client: Client,
    cp: ControlPlane,
    proc: ControllerProcess,
    ns: str,
    n: int,
    args: list[str],
    workdir: Path,
    watch: ConditionWatch,
    churn_seconds: float,
) -> JSON:
    await complete_jobs(client, ns, n)
    await watch.until(lambda: len(watch.ready) >= n, timeout=3600)
    await asyncio.sleep(2)
    churn = await churn_phase(client, proc, ns, n, churn_seconds)  # with the default (10 h) resync period
    await proc.stop()
    versions = await resource_versions(client, ns)
    restarted = ControllerProcess(cp.kubeconfig, log=workdir / f"controller-{ns}-restart.log",
                                  args=[*args, "--sync-period=10"], env={"LOG_LEVEL": "warning"})  # fmt: skip
    t0 = time.monotonic()
    await restarted.start(timeout=600)  # /readyz: caches synced
    try:
        synced = time.monotonic() - t0
        while True:  # drained: every object reconciled once, the queue empty
            text = scrape(restarted.metrics_port)
            if (
                metric(text, "controller_runtime_reconcile_total", controller="model") >= n
                and metric(text, "workqueue_depth", name="model") == 0
            ):
                break
            await asyncio.sleep(0.2)
        drained = time.monotonic() - t0
        drain_writes = sum(requests_by_method(text).get(m, 0.0) for m in WRITES)
        drain_gets = requests_by_method(text).get("GET", 0.0)  # the informers' LIST pages and WATCHes included
        lag_max = metric(text, "event_loop_lag_max_seconds")
        reconciled = metric(text, "controller_runtime_reconcile_total", controller="model")
        await poll(  # one full resync (every 10 s) has gone through
            lambda: (
                metric(scrape(restarted.metrics_port), "controller_runtime_reconcile_total", controller="model")
                >= reconciled + n
            )
        )
        text = scrape(restarted.metrics_port)
        resync_writes = sum(requests_by_method(text).get(m, 0.0) for m in WRITES) - drain_writes
        changed = sum(1 for k, v in (await resource_versions(client, ns)).items() if versions.get(k) != v)
        rss = rss_mib(restarted.proc.pid) if restarted.proc else float("nan")
    finally:
        await restarted.stop()
    return {"synced_s": synced, "drained_s": drained, "drain_writes": drain_writes, "resync_writes": resync_writes,
            "drain_gets": drain_gets,
            "rv_changes": changed, "loop_lag_max_s": lag_max, "rss_ready_mib": rss, **churn}  # fmt: skip


async def churn_phase(client: Client, proc: ControllerProcess, ns: str, n: int, seconds: float) -> JSON:
    """20 annotation changes a second over the Models; the queue duration p50/p99 (bucket bounds)."""
    before = scrape(proc.metrics_port)
    rng = random.Random(0)
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        tick = time.monotonic()
        names = [f"m-{rng.randrange(n):05d}" for _ in range(20)]
        await asyncio.gather(
            *(client.patch(MODELS, name, {"metadata": {"annotations": {"bench/churn": str(i)}}}, ns) for name in names)
        )
        i += 1
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    await asyncio.sleep(2)
    after = scrape(proc.metrics_port)
    name = "workqueue_queue_duration_seconds"
    gets = requests_by_method(after).get("GET", 0.0) - requests_by_method(before).get("GET", 0.0)
    reconciles = metric(after, "controller_runtime_reconcile_total") - metric(
        before, "controller_runtime_reconcile_total"
    )
    return {
        "churn_changes": i * 20,
        "churn_reconciles": reconciles,
        "churn_gets_per_reconcile": gets / max(reconciles, 1.0),
        "queue_p50_le_s": quantile_bound(before, after, name, 0.5),
        "queue_p99_le_s": quantile_bound(before, after, name, 0.99),
    }


async def burst_kopf(client: Client, cp: ControlPlane, n: int, artifacts: str, workdir: Path) -> JSON:
    ns = await new_namespace(client, f"kopf-{n}")
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig), "BENCH_ARTIFACTS": artifacts,
           "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}  # fmt: skip
    kopf = Path(sys.executable).with_name("kopf")
    log = (workdir / f"kopf-{ns}.log").open("wb")
    proc = subprocess.Popen([str(kopf), "run", "--standalone", "--namespace", ns, "--quiet",
                             str(ROOT / "bench" / "kopf_operator.py")], env=env, stdout=log, stderr=log)  # fmt: skip
    try:
        await asyncio.sleep(5)  # kopf has no readiness endpoint by default: give it its start
        idle = rss_mib(proc.pid)
        seconds, watch = await burst(client, ns, n, lambda: create_models(client, ns, n))
        await asyncio.sleep(2)
        rss = rss_mib(proc.pid)
        await watch.stop()
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        if proc.poll() is None:
            proc.kill()
        log.close()
    return {"variant": "kopf", "n": n, "seconds": seconds, "per_s": n / seconds, "rss_idle_mib": idle,
            "rss_after_mib": rss}  # fmt: skip


# ------------------------------------------------------------------------------------------------ targets
def targets(runs: list[JSON], sizes: list[int]) -> list[JSON]:
    """Every P target with its measured value and pass/short (None: not measured in this run)."""
    by = {(r["variant"], r["n"]): r for r in runs}

    def ratio(n: int) -> float | None:
        c, r = by.get(("controller", n)), by.get(("raw", n))
        return c["per_s"] / r["per_s"] if c and r else None

    def row(p: str, what: str, value: float | None, ok: bool | None, shown: str) -> JSON:
        return {"p": p, "what": what, "value": value, "pass": ok, "shown": shown}

    rows = []
    small, large = min(sizes), max(sizes)
    for n, want in ((small, 0.8), (large, 0.6)) if small != large else ((small, 0.8),):
        v = ratio(n)
        rows.append(row("P1", f"burst to status at N={n}: controller / RAW >= {want}", v,
                        None if v is None else v >= want, "-" if v is None else f"{v:.2f} x RAW"))  # fmt: skip
    c = by.get(("controller", large))
    if c:
        w, g = c["writes_per_object"], c["gets_per_reconcile"]
        steady_gets = (c.get("steady") or {}).get("churn_gets_per_reconcile")
        rows.append(
            row(
                "P2",
                "writes per object = changed children + status (4); 0 reads per reconcile",
                w,
                w <= 4.0 + 1e-9 and g == 0,
                f"{w:.2f} writes/object; burst: {g:.3f} GETs/reconcile"
                + ("" if steady_gets is None else f"; steady (churn): {steady_gets:.3f} GETs/reconcile"),
            )
        )
        s = c.get("steady")
        if s:
            rows.append(row("P3", f"no-op resync of {large} Ready objects: 0 writes, 0 rv changes",
                            s["resync_writes"], s["resync_writes"] == 0 and s["rv_changes"] == 0,
                            f"{s['resync_writes']:.0f} writes, {s['rv_changes']} rv changes"))  # fmt: skip
            p50, p99 = s["queue_p50_le_s"], s["queue_p99_le_s"]
            rows.append(
                row(
                    "P4",
                    "20 changes/s: queue duration p50 <= 10 ms, p99 <= 100 ms",
                    p99,
                    p50 <= 0.010 and p99 <= 0.100,
                    f"p50 <= {p50 * 1000:g} ms, p99 <= {p99 * 1000:g} ms",
                )
            )
            rows.append(row("P7", f"restart with {large} Ready: synced <= 20 s, drained <= 60 s, 0 writes",
                            s["drained_s"], s["synced_s"] <= 20 and s["drained_s"] <= 60 and s["drain_writes"] == 0,
                            f"synced {s['synced_s']:.1f} s, drained {s['drained_s']:.1f} s, "
                            f"{s['drain_writes']:.0f} writes"))  # fmt: skip
            lag = s["loop_lag_max_s"]
            rows.append(row("P8", f"event-loop lag <= 100 ms during the {large}-object relist", lag, lag <= 0.1,
                            f"{lag * 1000:.0f} ms"))  # fmt: skip
    rows.append(row("P5", "create -> Ready p50 <= 250 ms, p99 <= 1 s at 20/s", None, None,
                    "not measured by this suite (needs KCM + kubelet; see bench/README.md)"))  # fmt: skip
    idle = [r["rss_idle_mib"] for r in runs if r["variant"] == "controller"]
    if idle:
        rows.append(row("P6", "RSS idle <= 60 MiB", min(idle), min(idle) <= 60, f"{min(idle):.0f} MiB"))
    for n, cap in ((1000, 128), (10000, 300)):
        c = by.get(("controller", n))
        if c:
            rows.append(row("P6", f"RSS with {n} objects and children <= {cap} MiB", c["rss_after_mib"],
                            c["rss_after_mib"] <= cap, f"{c['rss_after_mib']:.0f} MiB"))  # fmt: skip
    return rows


def cost_curve(runs: list[JSON]) -> JSON:
    """objects/s and MiB per N for the controller, and the linear fit's prediction for 100k."""
    pts = sorted((r["n"], r["per_s"], r["rss_after_mib"]) for r in runs if r["variant"] == "controller")
    if len(pts) < 2:
        return {"points": pts}
    (n0, _, m0), (n1, _, m1) = pts[0], pts[-1]
    per_object_kib = (m1 - m0) / (n1 - n0) * 1024
    return {"points": pts, "kib_per_object": per_object_kib,
            "predicted_mib_at_100k": m0 + (100_000 - n0) * per_object_kib / 1024}  # fmt: skip


# ------------------------------------------------------------------------------------------------ report
def machine() -> JSON:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        "?",
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(), "cpu": cpu,
            "debian": Path("/etc/debian_version").read_text().strip(), "kernel": platform.release(),
            "python": platform.python_version(), "git_commit": commit.stdout.strip()}  # fmt: skip


def markdown(doc: JSON) -> str:
    m = doc["machine"]
    lines = [f"# Benchmark suite: {m['date']}", "",
             f"{m['nproc']} cores ({m['cpu']}), Debian {m['debian']}, kernel {m['kernel']}, Python {m['python']}, "
             f"commit {m['git_commit']}. One control plane (etcd + kube-apiserver) on the same machine.", "",
             "## Burst: N Models created, 20 in flight, until every Model has conditions", "",
             "| variant | N | seconds | objects/s | x RAW | writes/object | RSS idle MiB | RSS after MiB |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    raw = {r["n"]: r["per_s"] for r in doc["runs"] if r["variant"] == "raw"}
    for r in doc["runs"]:
        x = r["per_s"] / raw[r["n"]] if r["n"] in raw else float("nan")
        lines.append(
            f"| {r['variant']} | {r['n']} | {r['seconds']:.1f} | {r['per_s']:.1f} | {x:.2f} | "
            f"{r.get('writes_per_object', float('nan')):.2f} | {r.get('rss_idle_mib', float('nan')):.0f} | "
            f"{r.get('rss_after_mib', float('nan')):.0f} |"
        )
    lines += ["", "## Targets", "", "| P | target | measured | result |", "|---|---|---|---|"]
    for t in doc["targets"]:
        verdict = "n/a" if t["pass"] is None else ("pass" if t["pass"] else "short")
        lines.append(f"| {t['p']} | {t['what']} | {t['shown']} | {verdict} |")
    curve = doc["cost_curve"]
    if "kib_per_object" in curve:
        lines += ["", "## Cost curve (controller)", "", "| N | objects/s | RSS MiB |", "|---|---|---|"]
        lines += [f"| {n} | {p:.1f} | {mib:.0f} |" for n, p, mib in curve["points"]]
        lines += ["", f"Memory per object (with its children): {curve['kib_per_object']:.1f} KiB; a linear "
                  f"prediction for 100,000 objects: {curve['predicted_mib_at_100k']:.0f} MiB."]  # fmt: skip
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace, workdir: Path) -> JSON:
    sizes = [int(s) for s in args.sizes.split(",")]
    kopf_sizes = [int(s) for s in args.kopf_sizes.split(",") if s]
    artifacts = f"file://{workdir / 'artifacts'}"
    runs: list[JSON] = []
    with ControlPlane(workdir=workdir / "controlplane") as cp:
        from bench.informer_sync import install_crds

        install_crds(cp)
        async with await Client.connect(cp.kubeconfig, timeout=60) as client:
            for n in sizes:
                print(f"raw n={n} ...", flush=True)
                runs.append(await burst_raw(client, n, artifacts))
                print(f"  {runs[-1]['per_s']:.1f}/s", flush=True)
                print(f"controller n={n} ...", flush=True)
                runs.append(await burst_controller(client, cp, n, artifacts, workdir, steady=n == max(sizes),
                                                   churn_seconds=args.churn_seconds))  # fmt: skip
                print(f"  {runs[-1]['per_s']:.1f}/s", flush=True)
                if n in kopf_sizes:
                    print(f"kopf n={n} ...", flush=True)
                    runs.append(await burst_kopf(client, cp, n, artifacts, workdir))
                    print(f"  {runs[-1]['per_s']:.1f}/s", flush=True)
    return {"machine": machine(), "args": vars(args), "runs": runs, "targets": targets(runs, sizes),
            "cost_curve": cost_curve(runs)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes into a temporary directory (smoke)")
    parser.add_argument("--sizes", default="1000,3000,10000")
    parser.add_argument("--kopf-sizes", default="1000")
    parser.add_argument("--churn-seconds", type=float, default=30.0)
    parser.add_argument("--out-dir", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.kopf_sizes, args.churn_seconds = "50,200", "50", 5.0
    out = args.out_dir or (Path(tempfile.mkdtemp(prefix="bench-")) if args.quick else RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="substratus-bench-") as tmp:
        doc = asyncio.run(run(args, Path(tmp)))
    (out / "suite.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "suite.md").write_text(markdown(doc))
    print(markdown(doc))
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
