"""A real Kubernetes node for the test control plane: containerd + runc, a CNI bridge, kubelet and
kube-scheduler v1.20.2, the project's locally built images, and the node's own image registry and git
server on the bridge address (no internet).

`RealNode(kubeconfig).up(images=[archive])` creates the bridge (its address is the node's InternalIP, which
the API server dials for logs, exec and port-forward), starts containerd (its own socket, root and state
under the node's directories, so a system containerd is never touched), imports the image archives, starts
the kubelet and the scheduler, waits for the node to be Ready and lifts the `not-ready` taint (the test
control plane runs no node-lifecycle controller). It also starts Debian's `docker-registry` (the CNCF
distribution registry) on `<bridge address>:5000`, plain HTTP, which containerd pulls from (certs.d
hosts.toml) and builder pods push to, publishes it as KEP-1755's `kube-public/local-registry-hosting`
ConfigMap (as kind's local-registry recipe does), and a `git daemon` on `<bridge address>:9418` serving
`git_root` (read-only, every repository exported). `down()` undoes all of it: it deletes the Node object,
stops the daemons by pid (TERM, then KILL), removes every container of this containerd, kills the leftover
shims of *this* containerd (found by the socket they were started with), unmounts everything under the
node's directories, deletes the bridge, restores the sysctls the kubelet changed and removes the state.

Invariants:
- Root only. One node per machine with the default settings (`NodeSettings` holds the knobs).
- Network: the kubelet listens on the bridge address only, streams on 127.0.0.1, probes pod addresses
  inside the pod network namespaces; pods have no route out (`ipMasq: false`). The kubelet runs with
  `AWS_EC2_METADATA_DISABLED=true` so that no credential provider probes a cloud metadata address.
- Pid files (`<run>/<daemon>.pid`, "pid argv0") let another process (`hack/realnode.sh down`) stop exactly
  what `up` started; a pid whose command line no longer matches is left alone.
- Imported images are never garbage-collected (they cannot be pulled back) and never pulled: pods must use
  `imagePullPolicy: IfNotPresent`/`Never` for them (a tagged image defaults to IfNotPresent). Images in
  the node's registry are pulled from it. The registry's storage lives under the node state: gone on `down`.
- Registry and git traffic stay on the bridge: the daemons listen on the bridge address only, and the
  processes that talk to them run without proxy variables.
- The API server needs `apiserver_flags()` (InternalIP first, a client certificate the kubelet trusts)
  for logs, exec and port-forward.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from substratus_controller.constants import LOCAL_REGISTRY_HOSTING_KEY, LOCAL_REGISTRY_HOSTING_NAME

from .controlplane import admin_request, default_cache_dir, free_port

SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops")
CAP_SYS_RESOURCE = 24
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
PAUSE_IMAGE = "substratus.local/pause:3.2"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
Log = Callable[[str], None]


class RealNodeError(RuntimeError):
    """The node could not be prepared, started or reached (the message says what to do)."""


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class NodeSettings:
    """Where and how the node runs; the defaults give the one node of a machine."""

    name: str = field(default_factory=lambda: _env("SUBSTRATUS_NODE_NAME", "substratus-node"))
    subnet: str = field(default_factory=lambda: _env("SUBSTRATUS_NODE_SUBNET", "10.244.0"))  # pods .2-.254
    bridge: str = field(default_factory=lambda: _env("SUBSTRATUS_NODE_BRIDGE", "subst0"))
    state: Path = field(default_factory=lambda: Path(_env("SUBSTRATUS_NODE_STATE", "/var/lib/substratus-node")))
    run: Path = field(default_factory=lambda: Path(_env("SUBSTRATUS_NODE_RUN", "/run/substratus-node")))
    kubelet_port: int = field(default_factory=lambda: int(_env("SUBSTRATUS_KUBELET_PORT", "10250")))
    registry_port: int = field(default_factory=lambda: int(_env("SUBSTRATUS_REGISTRY_PORT", "5000")))
    git_port: int = field(default_factory=lambda: int(_env("SUBSTRATUS_GIT_PORT", "9418")))
    bin_dir: Path = field(default_factory=lambda: default_cache_dir() / "bin")

    @property
    def ip(self) -> str:
        """The node's InternalIP: the bridge address, the pods' gateway."""
        return f"{self.subnet}.1"

    @property
    def socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def registry(self) -> str:
        return f"{self.ip}:{self.registry_port}"

    @property
    def git_url(self) -> str:
        """`git://` base URL of the node's git server (append a repository's directory name)."""
        return f"git://{self.ip}:{self.git_port}"


def pki_dir() -> Path:
    return default_cache_dir().parent / "node-pki"


def ensure_pki() -> Path:
    """A CA the kubelet trusts for client certificates, and the API server's client certificate for it."""
    d = pki_dir()
    if (d / "apiserver-kubelet-client.crt").is_file():
        return d
    d.mkdir(parents=True, exist_ok=True)

    def ssl_(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
         "-subj", "/CN=substratus-node-ca")  # fmt: skip
    ssl_("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver-kubelet-client.key", "-out", "client.csr",
         "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client")  # fmt: skip
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    ssl_("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days",
         "3650", "-extfile", "client.ext", "-out", "apiserver-kubelet-client.crt")  # fmt: skip
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d


def apiserver_flags() -> list[str]:
    """The kube-apiserver flags the node needs (the kubelet's Hostname address does not resolve)."""
    d = ensure_pki()
    return [
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={d / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={d / 'apiserver-kubelet-client.key'}",
    ]


class _Api:
    """Just enough of the API for the node's life cycle, from a kubeconfig with a token (the test ones)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = json.loads(kubeconfig.read_text())
        self.server = config["clusters"][0]["cluster"]["server"]
        self.token = config["users"][0]["user"]["token"]

    def request(self, path: str, *, method: str = "GET", body: Any = None, content_type: str = "application/json",
                timeout: float = 5.0) -> Any:  # fmt: skip
        return admin_request(
            self.server, self.token, path, method=method, body=body, content_type=content_type, timeout=timeout
        )


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


class RealNode:
    """See module docstring. `node = RealNode(kubeconfig).up(images=[...])`; `node.down()`."""

    DAEMONS = ("kube-scheduler", "kubelet", "containerd", "registry", "git-daemon")

    def __init__(
        self, kubeconfig: Path | None = None, *, settings: NodeSettings | None = None, log: Log = lambda _m: None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.s = settings or NodeSettings()
        self.log = log
        self.up_seconds = 0.0

    # ------------------------------------------------------------------------------------------- paths
    @property
    def name(self) -> str:
        return self.s.name

    @property
    def ip(self) -> str:
        return self.s.ip

    @property
    def log_dir(self) -> Path:
        return self.s.state / "log"

    @property
    def git_root(self) -> Path:
        """Repositories here are served as `<git_url>/<directory name>`."""
        return self.s.state / "git"

    def _pidfile(self, daemon: str) -> Path:
        return self.s.run / f"{daemon}.pid"

    def pid(self, daemon: str) -> int | None:
        """The pid of a running daemon this node started, else None."""
        try:
            pid_text, _, argv0 = self._pidfile(daemon).read_text().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        cmd = _cmdline(pid)
        return pid if cmd and cmd[0] == argv0.strip() else None

    def running(self) -> bool:
        return any(self.pid(d) is not None for d in self.DAEMONS)

    def ctr(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """`ctr` against this node's containerd, namespace k8s.io."""
        argv = ["ctr", "--address", str(self.s.socket), "-n", "k8s.io", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RealNodeError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    # ------------------------------------------------------------------------------------------- up
    def up(self, *, images: Sequence[Path] = (), timeout: float = 120.0) -> RealNode:
        """Start the node and import `images` (docker-save archives); returns when the node is Ready."""
        if os.geteuid() != 0:
            raise RealNodeError("the real node needs root (network namespaces, mounts, cgroups, a bridge)")
        if self.kubeconfig is None:
            raise RealNodeError("RealNode.up needs the control plane's kubeconfig")
        for binary in ("kubelet", "kube-scheduler"):
            if not (self.s.bin_dir / binary).is_file():
                raise RealNodeError(f"{self.s.bin_dir / binary} is missing; run: hack/testenv.sh provision")
        for tool in ("containerd", "runc", "ctr", "ip", "docker-registry", "skopeo", "git"):
            if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None:
                raise RealNodeError(f"{tool} is not installed; run: hack/bootstrap.sh")
        if self.running():
            raise RealNodeError(
                f"a real node is already running here (kubelet pid {self.pid('kubelet')}); stop it with "
                "`hack/realnode.sh down` (another test run or demo may be using it)"
            )
        if self.s.state.exists() or self.s.run.exists():
            self.log("cleaning up what an earlier node left behind")
            self.down()
        started = time.monotonic()
        try:
            self._up(images, timeout)
        except BaseException:
            self.log("start failed; cleaning up")
            self.down()
            raise
        self.up_seconds = time.monotonic() - started
        self.log(f"node {self.name} Ready ({self.ip}) in {self.up_seconds:.1f} s")
        return self

    def _up(self, images: Sequence[Path], timeout: float) -> None:
        assert self.kubeconfig is not None
        s = self.s
        pki = ensure_pki()
        for d in (s.state / "cni" / "net.d", self.log_dir, s.state / "kubelet", s.run):
            d.mkdir(parents=True, exist_ok=True)
        kubeconfig = s.state / "kubeconfig"
        kubeconfig.write_text(self.kubeconfig.read_text())
        kubeconfig.chmod(0o600)
        saved = {name: _sysctl(name) for name in SYSCTLS}
        (s.state / "sysctl.json").write_text(json.dumps(saved))
        self._write_configs(pki)
        self._bridge()
        self._start_registry()
        self._start_git()
        # containerd pulls from the node's registry: no proxy variables (they would route that traffic away)
        self._start("containerd", ["containerd", "--config", str(s.state / "containerd.toml")], env=_no_proxy_env())
        self._wait(lambda: self.ctr("version", check=False).returncode == 0, 10, "containerd", "containerd")
        importer = _Importer(self, images)
        importer.start()  # while the kubelet starts: it needs no image until a pod comes
        self._start("kubelet", [
            "env", "AWS_EC2_METADATA_DISABLED=true", str(s.bin_dir / "kubelet"),
            f"--config={s.state / 'kubelet.yaml'}", f"--kubeconfig={kubeconfig}",
            "--container-runtime=remote", f"--container-runtime-endpoint=unix://{s.socket}",
            "--runtime-request-timeout=10m", f"--root-dir={s.state / 'kubelet'}",
            f"--cert-dir={s.state / 'kubelet-pki'}", f"--node-ip={s.ip}", f"--hostname-override={s.name}",
            f"--pod-infra-container-image={PAUSE_IMAGE}", "--v=1",
        ])  # fmt: skip
        self._start("kube-scheduler", [
            str(s.bin_dir / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--port=0",
        ])  # fmt: skip
        api = _Api(self.kubeconfig)
        self._wait(lambda: self._ready(api), timeout, "the node to be Ready", "kubelet")
        self._untaint(api)
        self._publish_registry(api)
        importer.join()
        if importer.error:
            raise RealNodeError(importer.error)

    def _write_configs(self, pki: Path) -> None:
        s = self.s
        restrict_oom = not _has_capability(CAP_SYS_RESOURCE)
        (s.state / "containerd.toml").write_text(CONTAINERD_TOML.format(
            state=s.state, run=s.run, socket=s.socket, pause=PAUSE_IMAGE, cni_bin=CNI_BIN_DIR,
            restrict_oom=str(restrict_oom).lower(),
        ))  # fmt: skip
        hosts = s.state / "certs.d" / s.registry / "hosts.toml"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(HOSTS_TOML.format(registry=s.registry))
        conflist = {
            "cniVersion": "0.4.0",
            "name": "substratus",
            "plugins": [{
                "type": "bridge", "bridge": s.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "dataDir": str(s.state / "cni" / "ipam"),
                         "ranges": [[{"subnet": f"{s.subnet}.0/24", "gateway": s.ip}]],
                         "routes": [{"dst": "0.0.0.0/0"}]},
            }],
        }  # fmt: skip
        (s.state / "cni" / "net.d" / "10-substratus.conflist").write_text(json.dumps(conflist, indent=1))
        (s.state / "kubelet.yaml").write_text(KUBELET_YAML.format(
            ip=s.ip, port=s.kubelet_port, healthz=free_port(), ca=pki / "ca.crt", plugins=s.state / "volume-plugins",
        ))  # fmt: skip

    def _bridge(self) -> None:
        s = self.s
        if subprocess.run(["ip", "link", "show", s.bridge], capture_output=True, check=False).returncode != 0:
            _run(["ip", "link", "add", s.bridge, "type", "bridge"])
        addrs = subprocess.run(["ip", "addr", "show", "dev", s.bridge], capture_output=True, text=True, check=False)
        if f"inet {s.ip}/" not in addrs.stdout:
            _run(["ip", "addr", "add", f"{s.ip}/24", "dev", s.bridge])
        _run(["ip", "link", "set", s.bridge, "up"])

    def _start_registry(self) -> None:
        s = self.s
        (s.state / "registry" / "data").mkdir(parents=True, exist_ok=True)
        config = s.state / "registry" / "config.yml"
        config.write_text(REGISTRY_YML.format(data=s.state / "registry" / "data", addr=s.registry))
        self._start("registry", ["docker-registry", "serve", str(config)], env=_no_proxy_env())
        url = f"http://{s.registry}/v2/"

        def ok() -> bool:
            with _direct().open(url, timeout=1) as resp:
                return bool(resp.status == 200)

        self._wait(ok, 10, f"the registry at {url}", "registry")

    def _start_git(self) -> None:
        s = self.s
        self.git_root.mkdir(parents=True, exist_ok=True)
        exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
        self._start("git-daemon", [
            f"{exec_path}/git-daemon", "--export-all", "--reuseaddr", f"--base-path={self.git_root}",
            f"--listen={s.ip}", f"--port={s.git_port}", str(self.git_root),
        ])  # fmt: skip

    def _publish_registry(self, api: _Api) -> None:
        """KEP-1755: tell tools (and the local cloud's default) where the node's registry is."""
        body = registry_hosting_configmap(self.s.registry)
        path = "/api/v1/namespaces/kube-public/configmaps"
        try:
            api.request(path, method="POST", body=body)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise
            api.request(f"{path}/{LOCAL_REGISTRY_HOSTING_NAME}", method="PUT", body=body)

    def push_bases(self, bases: dict[str, Path], repositories: dict[str, str]) -> dict[str, str]:
        """Push each base archive (local ref -> archive) as its repository; local ref -> registry ref."""
        return {ref: self.push(path, repositories[ref]) for ref, path in bases.items()}

    def push(self, archive: Path, ref: str) -> str:
        """Push the image of a docker-save archive holding one image to the node's registry as `ref`
        (`repository:tag`, without the registry); returns the full reference."""
        target = f"{self.s.registry}/{ref}"
        argv = ["skopeo", "copy", "-q", "--insecure-policy", "--dest-tls-verify=false",
                f"docker-archive:{archive}", f"docker://{target}"]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, env=_no_proxy_env(), timeout=300, check=False)
        if result.returncode != 0:
            raise RealNodeError(f"pushing {archive.name} to {target} failed: {result.stderr.strip()}")
        return target

    def _start(self, daemon: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with (self.log_dir / f"{daemon}.log").open("ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
            )
        # `env VAR=... kubelet` execs the kubelet: record the argv0 it will have, once it has it
        deadline = time.monotonic() + 5
        argv0 = argv[0]
        while time.monotonic() < deadline:
            cmd = _cmdline(proc.pid)
            if cmd and cmd[0] != "env":
                argv0 = cmd[0]
                break
            time.sleep(0.02)
        self._pidfile(daemon).write_text(f"{proc.pid} {argv0}")

    def _wait(self, ok: Callable[[], bool], timeout: float, what: str, daemon: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
                if ok():
                    return
            if self.pid(daemon) is None:
                raise RealNodeError(f"{daemon} exited while waiting for {what}:\n{self.tail(daemon)}")
            time.sleep(0.3)
        raise RealNodeError(f"timed out after {timeout:g}s waiting for {what}:\n{self.tail(daemon)}")

    def _ready(self, api: _Api) -> bool:
        node = api.request(f"/api/v1/nodes/{self.name}")
        conds = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or ()}
        return conds.get("Ready") == "True"

    def _untaint(self, api: _Api) -> None:
        node = api.request(f"/api/v1/nodes/{self.name}")
        taints = [t for t in (node.get("spec") or {}).get("taints") or () if t.get("key") != NOT_READY_TAINT]
        api.request(f"/api/v1/nodes/{self.name}", method="PATCH", body={"spec": {"taints": taints or None}},
                    content_type="application/merge-patch+json")  # fmt: skip

    def tail(self, daemon: str, lines: int = 30) -> str:
        try:
            return "\n".join((self.log_dir / f"{daemon}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running_containers(self) -> set[tuple[str, str, str]]:
        """(namespace, pod, container) of every container running on the node, from containerd itself."""
        running = {row.split()[0] for row in self.ctr("tasks", "ls").stdout.splitlines()[1:]
                   if row.split() and row.split()[-1] == "RUNNING"}  # fmt: skip
        out = set()
        for cid in running:
            info = self.ctr("containers", "info", cid, check=False)
            if info.returncode != 0:
                continue  # gone meanwhile
            labels = json.loads(info.stdout).get("Labels") or {}
            if "io.kubernetes.container.name" in labels:
                out.add((labels.get("io.kubernetes.pod.namespace", ""), labels.get("io.kubernetes.pod.name", ""),
                         labels["io.kubernetes.container.name"]))  # fmt: skip
        return out

    def import_images(self, archive: Path) -> None:
        """Import a docker-save archive into the running node."""
        self.ctr("images", "import", str(archive), timeout=600)

    # ------------------------------------------------------------------------------------------- down
    def down(self) -> None:
        """Stop and remove everything `up` started or created (idempotent; also after a failed `up`)."""
        s = self.s
        kubeconfig = s.state / "kubeconfig"
        if kubeconfig.is_file():
            # forget the Node: the controller-manager's pod GC then deletes the pods bound to it
            with contextlib.suppress(OSError, ValueError, KeyError, urllib.error.URLError):
                _Api(kubeconfig).request(f"/api/v1/nodes/{self.name}", method="DELETE", timeout=5)
        self._stop("kube-scheduler")
        self._stop("kubelet")
        self._stop("registry")
        self._stop("git-daemon")
        if self.pid("containerd") is not None:
            self._remove_containers()
        self._stop("containerd")
        self._kill_shims()
        self._unmount()
        if subprocess.run(["ip", "link", "show", s.bridge], capture_output=True, check=False).returncode == 0:
            subprocess.run(["ip", "link", "delete", s.bridge], capture_output=True, check=False)
        with contextlib.suppress(OSError, ValueError):
            for name, value in json.loads((s.state / "sysctl.json").read_text()).items():
                subprocess.run(["sysctl", "-q", "-w", f"{name}={value}"], capture_output=True, check=False)
        _remove_empty_cgroups()
        for d in (s.run, s.state):
            subprocess.run(["rm", "-rf", "--one-file-system", str(d)], capture_output=True, check=False)

    def _stop(self, daemon: str, grace: float = 10.0) -> None:
        pid = self.pid(daemon)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _cmdline(pid):
                time.sleep(0.1)
                _reap(pid)
            if _cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _reap(pid, block=True)
        self._pidfile(daemon).unlink(missing_ok=True)

    def _remove_containers(self) -> None:
        tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", task, check=False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rows = self.ctr("tasks", "ls", check=False).stdout.splitlines()[1:]
            if all(r.split()[-1] == "STOPPED" for r in rows if r.split()):
                break
            time.sleep(0.1)
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "delete", "-f", task, check=False)
        for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "delete", container, check=False)

    def _kill_shims(self) -> None:
        """Shims reparent to PID 1; the ones of this containerd carry `-address <our socket>`."""
        marker = str(self.s.socket)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            cmd = _cmdline(int(entry.name))
            if cmd and "containerd-shim" in cmd[0] and "-address" in cmd and marker in cmd:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount(self) -> None:
        prefixes = (f"{self.s.state}/", f"{self.s.run}/")
        for _ in range(3):
            mounts = []
            with contextlib.suppress(OSError):
                for line in Path("/proc/self/mountinfo").read_text().splitlines():
                    point = line.split()[4].replace("\\040", " ")
                    if point.startswith(prefixes) or point in (str(self.s.state), str(self.s.run)):
                        mounts.append(point)
            if not mounts:
                return
            for point in sorted(mounts, reverse=True):
                if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                    subprocess.run(["umount", "-l", point], capture_output=True, check=False)


class _Importer(threading.Thread):
    """Imports image archives into the node's containerd in the background (during kubelet start-up)."""

    def __init__(self, node: RealNode, archives: Sequence[Path]) -> None:
        super().__init__(daemon=True)
        self.node, self.archives, self.error = node, list(archives), ""

    def run(self) -> None:
        try:
            for archive in self.archives:
                self.node.import_images(archive)
        except (RealNodeError, subprocess.TimeoutExpired) as exc:
            self.error = f"importing images failed: {exc}"


def registry_hosting_configmap(registry: str) -> dict[str, Any]:
    """KEP-1755's `kube-public/local-registry-hosting` for a registry that pods and nodes reach as `registry`."""
    hosting = (
        f'host: "{registry}"\nhostFromContainerRuntime: "{registry}"\n'
        f'hostFromClusterNetwork: "{registry}"\nhelp: "see the README, Local clusters"\n'
    )
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": LOCAL_REGISTRY_HOSTING_NAME, "namespace": "kube-public"},
            "data": {LOCAL_REGISTRY_HOSTING_KEY: hosting}}  # fmt: skip


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _no_proxy_env() -> dict[str, str]:
    """The environment without proxy variables: registry traffic stays on the bridge."""
    return {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}


def _direct() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RealNodeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def _reap(pid: int, block: bool = False) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0 if block else os.WNOHANG)


def _sysctl(name: str) -> str:
    return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, check=False).stdout.strip()


def _has_capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool((int(line.split()[1], 16) >> bit) & 1)
    return False


def _remove_empty_cgroups() -> None:
    roots = [p / "kubepods" for p in Path("/sys/fs/cgroup").glob("*")] + [Path("/sys/fs/cgroup/kubepods")]
    for root in roots:
        if not root.is_dir():
            continue
        for top, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
            with contextlib.suppress(OSError):
                os.rmdir(top)


CONTAINERD_TOML = """\
version = 2
root = "{state}/containerd"
state = "{run}/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # without CAP_SYS_RESOURCE (some VMs) runc cannot lower oom_score_adj to the sandbox's -998 and fails
  # with "can't get final child's PID from pipe: EOF": clamp it instead
  restrict_oom_score_adj = {restrict_oom}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  # registries: one hosts.toml per registry under certs.d (the node's own one is plain HTTP)
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{state}/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{state}/cni/net.d"
    max_conf_num = 1
[plugins."io.containerd.internal.v1.opt"]
  path = "{state}/opt"
"""

REGISTRY_YML = """\
version: 0.1
log: {{level: info, fields: {{service: registry}}}}
storage:
  filesystem: {{rootdirectory: {data}}}
  delete: {{enabled: true}}
  cache: {{blobdescriptor: inmemory}}
http:
  addr: {addr}
  headers: {{X-Content-Type-Options: [nosniff]}}
"""

HOSTS_TOML = """\
server = "http://{registry}"
[host."http://{registry}"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
"""

KUBELET_YAML = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {ip}
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: AlwaysAllow}}
cgroupDriver: cgroupfs
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failSwapOn: false
# local images cannot be pulled again: never garbage-collect them
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 50Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}}
serializeImagePulls: false
makeIPTablesUtilChains: false
# re-evaluate node status every 2 s (default 10 s): the node turns Ready ~8 s sooner
nodeStatusUpdateFrequency: 2s
volumePluginDir: {plugins}
resolvConf: /etc/resolv.conf
"""
