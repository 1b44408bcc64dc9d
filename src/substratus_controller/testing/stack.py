"""A whole local system for the demo and the e2e tests: control plane, CRDs, a node, controller.

- etcd + kube-apiserver + kube-controller-manager (real, on free loopback ports);
- the CRDs, installed like `kubectl apply` would (create or replace), waited for until served;
- a node: `node="real"` joins the real node (testing/realnode.py: kubelet, scheduler, containerd, the
  project's images, its registry holding the python and notebook images as bases (images.BASES), its git server;
  root only; the controller builds with buildah from the node's images), `node="simulated"` runs the
  simulated kubelet in the caller's event loop (the fast tier: pods are only reported Running/Succeeded,
  nothing runs);
- the controller as its own process, started through its CLI (`substratus-controller run`), logging JSON to
  `<workdir>/controller.log`, and waited for until `/readyz` answers 200.
`stop()` stops exactly what was started, in reverse order, also after a failed `start()`, and removes the
work directory it made (logs, artifacts) unless SUBSTRATUS_KEEP_TESTENV=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from substratus_controller.api.v1.crd import build_crds, strip_cel
from substratus_controller.plugins.uploadorigin import UPLOAD_ORIGINS_KEY, UPLOAD_ORIGINS_NAME, UPLOAD_ORIGINS_NAMESPACE
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import AlreadyExists, NotFound

from . import images
from .controlplane import ControlPlane, free_port
from .kubelet import Rule, SimulatedKubelet, default_rules
from .realnode import RealNode, apiserver_flags, registry_hosting_configmap


async def install_crds(client: Client, crds: Sequence[dict[str, Any]] | None = None, timeout: float = 60.0) -> None:
    """Create or replace the CRDs (without CEL on servers older than 1.25) and wait until they are served."""
    version = await client.request("GET", "/version")
    minor = int(str(version.get("minor", "0")).rstrip("+"))
    for crd in crds or build_crds():
        body = crd if minor >= 25 else strip_cel(crd)
        try:
            await client.create(k8s.CUSTOMRESOURCEDEFINITIONS, body)
        except AlreadyExists:
            current = await client.get(k8s.CUSTOMRESOURCEDEFINITIONS, body["metadata"]["name"])
            meta = {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
            await client.replace(k8s.CUSTOMRESOURCEDEFINITIONS, {**body, "metadata": meta})
    deadline = time.monotonic() + timeout
    for crd in crds or build_crds():
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        version_name = crd["spec"]["versions"][0]["name"]
        while True:
            try:
                await client.request("GET", f"/apis/{group}/{version_name}/{plural}", timeout=5)
                break
            except NotFound:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {plural}.{group} not served within {timeout:g}s") from None
                await asyncio.sleep(0.1)


SIMULATED_REGISTRY = "registry.substratus.test:5000"  # what the fast tier's cluster publishes (never pulled)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ControllerProcess:
    """`substratus-controller run --cloud local` as its own process, on free loopback ports, logging JSON to
    `log`. `args` are appended (later flags win); `env` is added to the environment (or, with
    `inherit_env=False`, is the whole environment)."""

    def __init__(self, kubeconfig: Path, *, log: Path, args: Sequence[str] = (), env: dict[str, str] | None = None,
                 cloud: str = "local", inherit_env: bool = True) -> None:  # fmt: skip
        self.kubeconfig, self.log, self.cloud = kubeconfig, log, cloud
        self.args = list(args)
        self.env = {**(os.environ if inherit_env else {}), **(env or {})}
        self.metrics_port, self.probe_port, self.upload_port = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, *, timeout: float = 60.0, wait_ready: bool = True) -> None:
        argv = [
            sys.executable, "-m", "substratus_controller.cli", "run",
            "--kubeconfig", str(self.kubeconfig),
            "--cloud", self.cloud,
            "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
            "--health-probe-bind-address", f"127.0.0.1:{self.probe_port}",
            "--upload-bind-address", f"127.0.0.1:{self.upload_port}",
            "--log-format", "json",
            *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                argv, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        if wait_ready:
            await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited with {self.proc.returncode}:\n{_tail(self.log)}")
            if await asyncio.to_thread(self.probe, "/readyz") == 200:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"controller not ready within {timeout:g}s:\n{_tail(self.log)}")
            await asyncio.sleep(0.2)

    def probe(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}{path}", timeout=2) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                await asyncio.to_thread(proc.wait, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
        return proc.returncode


class Stack:
    """See module docstring. `async with Stack() as stack:` or `await start()` / `await stop()`."""

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        kubelet_rules: Sequence[Rule] = default_rules(),
        controller_args: Sequence[str] = (),
        controller_env: dict[str, str] | None = None,
        node: str = "simulated",
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        if node not in ("simulated", "real"):
            raise ValueError(f"node must be 'simulated' or 'real', not {node!r}")
        self.node_kind = node
        self.log = log
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="substratus-stack-"))
        self.kubelet_rules = list(kubelet_rules)
        self.controller_args = list(controller_args)
        self.controller_env = dict(controller_env or {})
        self.cp: ControlPlane | None = None
        self.client: Client | None = None
        self.kubelet: SimulatedKubelet | None = None
        self.node: RealNode | None = None
        self.controller: ControllerProcess | None = None
        self.metrics_port = 0
        self.probe_port = 0
        self.upload_port = 0
        self.bases: dict[str, str] = {}  # real node: local image -> its copy in the node's registry (images.BASES)

    @property
    def kubeconfig(self) -> Path:
        assert self.cp is not None
        return self.cp.kubeconfig

    @property
    def controller_log(self) -> Path:
        return self.workdir / "controller.log"

    def env(self) -> dict[str, str]:
        """Environment for kubectl and other tools pointed at this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    @property
    def artifacts(self) -> Path:
        """The local cloud's artifact directory (hostPath-mounted into pods on the real node)."""
        return self.workdir / "artifacts"

    async def start(self, *, with_controller: bool = True) -> Stack:
        try:
            real = self.node_kind == "real"
            archive, bases = await asyncio.to_thread(images.node_archives, log=self.log) if real else (None, {})
            flags = apiserver_flags() if real else []
            self.cp = ControlPlane(
                controller_manager=True, workdir=self.workdir / "controlplane", apiserver_flags=flags
            )
            await asyncio.to_thread(self.cp.start)
            self.client = await Client.connect(self.cp.kubeconfig)
            await install_crds(self.client)
            if archive is not None:
                self.node = RealNode(self.cp.kubeconfig, log=self.log)
                await asyncio.to_thread(self.node.up, images=[archive])
                self.bases = await asyncio.to_thread(self.node.push_bases, bases, images.BASES)
            else:
                self.kubelet = SimulatedKubelet(self.client, rules=self.kubelet_rules)
                await self.kubelet.start()
                # a cluster that hosts a registry says so (nothing pulls from it: pods are simulated)
                await self.client.create(k8s.CONFIGMAPS, registry_hosting_configmap(SIMULATED_REGISTRY))
            if with_controller:
                await self.start_controller()
        except BaseException:
            await self.stop()
            raise
        return self

    async def start_controller(self, *, timeout: float = 60.0) -> None:
        """Start `substratus-controller run` against this cluster (as admin) and wait until it is ready."""
        assert self.cp is not None
        env = dict(self.controller_env)
        if self.node is not None:  # build with the node's own builder images (images.NODE_BUILDER)
            env = {**images.NODE_BUILDER, **env}
        self.controller = ControllerProcess(
            self.cp.kubeconfig,
            log=self.controller_log,
            args=[f"--artifact-bucket-url=file://{self.artifacts}", *self.controller_args],
            env=env,
        )
        await self.controller.start(timeout=timeout)
        self.metrics_port = self.controller.metrics_port
        self.probe_port = self.controller.probe_port
        self.upload_port = self.controller.upload_port
        await self.publish_upload_origin(f"http://127.0.0.1:{self.upload_port}")

    async def publish_upload_origin(self, url: str) -> None:
        """Publish the controller's upload origin as a cluster administrator would
        (kube-public/substratus-upload-origins: the plugins upload nowhere else)."""
        assert self.client is not None
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": UPLOAD_ORIGINS_NAME, "namespace": UPLOAD_ORIGINS_NAMESPACE},
            "data": {UPLOAD_ORIGINS_KEY: url},
        }
        try:
            await self.client.create(k8s.CONFIGMAPS, body)
        except AlreadyExists:
            await self.client.replace(k8s.CONFIGMAPS, body)

    def metrics(self) -> str:
        """The controller's /metrics page."""
        assert self.controller is not None
        return self.controller.metrics()

    async def stop_controller(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.controller is None:
            return None
        proc, self.controller = self.controller, None
        return await proc.stop(sig, timeout)

    def tail_log(self, lines: int = 40) -> str:
        return _tail(self.controller_log, lines)

    async def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster without blocking the event loop."""
        binary = shutil.which("kubectl")
        if binary is None:
            raise RuntimeError("kubectl is not installed (hack/bootstrap.sh installs it)")
        proc = await asyncio.create_subprocess_exec(
            binary, *args, env=self.env(), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate(input.encode() if input is not None else None)
        result = subprocess.CompletedProcess([binary, *args], proc.returncode or 0, out.decode(), err.decode())
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, remote: int, *, kubectl: str = "kubectl") -> Iterator[int]:
        """`kubectl port-forward TARGET LOCAL:REMOTE` (a real stream through the API server and the kubelet:
        real node only) until the block ends; yields the local port once it forwards."""
        local = free_port()
        argv = [shutil.which(kubectl) or kubectl, "--kubeconfig", str(self.kubeconfig), "-n", namespace,
                "port-forward", target, f"{local}:{remote}"]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "Forwarding from" not in line:
                rest = proc.stdout.read() if proc.poll() is not None else ""
                raise RuntimeError(f"kubectl port-forward {target} did not start: {line}{rest}")
            yield local
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    async def stop(self) -> None:
        await self.stop_controller()
        if self.kubelet is not None:
            await self.kubelet.stop()
            self.kubelet = None
        if self.node is not None:
            node, self.node = self.node, None
            await asyncio.to_thread(node.down)
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self.cp is not None:
            await asyncio.to_thread(self.cp.stop)
            self.cp = None
        if self._own_workdir and os.environ.get("SUBSTRATUS_KEEP_TESTENV") != "1":
            await asyncio.to_thread(shutil.rmtree, self.workdir, True)

    async def __aenter__(self) -> Stack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
