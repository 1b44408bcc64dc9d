"""A real Kubernetes control plane for tests and demos: etcd + kube-apiserver (+ kube-controller-manager).

The processes listen on free loopback ports, so two runs can coexist. `ControlPlane.stop()` stops exactly
the processes this object started (by pid; it never searches for processes by name). Every process writes
its log to `<workdir>/<name>.log`.

Authentication is a static bearer token for `admin` (group `system:masters`); authorization is RBAC, so
tests can also run clients as ServiceAccounts (tokens from the TokenRequest API). There is no kubelet and no
scheduler: see `substratus_controller.testing.kubelet` for the simulated one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = "1.20.2"
_KCM_CONTROLLERS = (
    "*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,"
    "-pv-protection,-pvc-protection,-ttl,-cloud-node-lifecycle,-route,-service"
)


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, started or reached."""


@dataclass(frozen=True)
class Assets:
    """Paths of the three binaries."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None

    @classmethod
    def locate(cls, folder: str | os.PathLike[str] | None = None) -> Assets:
        """Find the binaries: `folder`, else $KUBEBUILDER_ASSETS, else the provisioned cache.

        etcd may also come from $PATH (Debian's etcd-server). Raises ControlPlaneError with the fix when
        something is missing.
        """
        candidates = [Path(p) for p in (folder, os.environ.get("KUBEBUILDER_ASSETS")) if p]
        candidates.append(default_cache_dir() / "bin")
        for d in candidates:
            apiserver = d / "kube-apiserver"
            if not apiserver.is_file():
                continue
            etcd = d / "etcd" if (d / "etcd").is_file() else _which("etcd")
            if etcd is None:
                raise ControlPlaneError(f"etcd not found in {d} nor on $PATH; run: hack/testenv.sh provision")
            kcm = d / "kube-controller-manager"
            return cls(etcd=etcd, kube_apiserver=apiserver, kube_controller_manager=kcm if kcm.is_file() else None)
        raise ControlPlaneError(
            "kube-apiserver not found (looked in "
            + ", ".join(str(c) for c in candidates)
            + "); run: hack/testenv.sh provision"
        )


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "substratus" / "testenv" / f"v{VERSION}"


def kubectl_clients() -> dict[str, Path]:
    """The two kubectl clients the tests use: "v1.20" (Debian 12's, built with the control plane: kustomize v2)
    and "current"; `hack/testenv.sh provision` puts both in the cache. AssertionError when one is missing."""
    found = {
        "v1.20": default_cache_dir() / "bin" / "kubectl",
        "current": default_cache_dir().parent / "kubectl-current" / "kubectl",
    }
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise AssertionError(f"{', '.join(missing)} missing; run: hack/testenv.sh provision")
    return found


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Proc:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, *, detach: bool) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=detach,
            )

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self.popen = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager when `controller_manager`), on free loopback ports.

    Use as a context manager or call `start()`/`stop()`. `apiserver_flags` are appended to the API
    server's command line (e.g. `--watch-cache=false`). `detach` starts the processes in their own
    session so that they outlive this Python process (for `hack/testenv.sh up`).
    """

    assets: Assets = field(default_factory=Assets.locate)
    workdir: Path | None = None
    controller_manager: bool = False
    apiserver_flags: Sequence[str] = ()
    detach: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    def __post_init__(self) -> None:
        self._own_workdir = self.workdir is None
        self.workdir = Path(self.workdir or tempfile.mkdtemp(prefix="substratus-testenv-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.apiserver_port = free_port()
        self.kcm_port = free_port()
        self._procs: dict[str, _Proc] = {}

    # ----------------------------------------------------------------------------------------- paths
    @property
    def dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items() if p.pid is not None and p.alive()}

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> ControlPlane:
        try:
            self._prepare()
            self.start_etcd()
            self.start_apiserver()
            if self.controller_manager:
                self.start_controller_manager()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process this object started (controller-manager, API server, etcd, in that order)."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.stop()
        if self._own_workdir and not self.detach and os.environ.get("SUBSTRATUS_KEEP_TESTENV") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _prepare(self) -> None:
        d = self.dir
        (d / "certs").mkdir(exist_ok=True)
        if not (d / "sa.key").exists():
            subprocess.run(["openssl", "genrsa", "-out", str(d / "sa.key"), "2048"], check=True, capture_output=True)
            subprocess.run(
                ["openssl", "rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub")],
                check=True,
                capture_output=True,
            )
        (d / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        self.kubeconfig.write_text(json.dumps(self.kubeconfig_dict(), indent=2))
        self.kubeconfig.chmod(0o600)

    def kubeconfig_dict(
        self, *, token: str | None = None, user: str = "admin", namespace: str | None = None
    ) -> dict[str, Any]:
        """A kubeconfig for this API server with a bearer token (the admin token by default)."""
        context: dict[str, Any] = {"cluster": "testenv", "user": user}
        if namespace:
            context["namespace"] = namespace
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testenv", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": user, "user": {"token": token or self.token}}],
            "contexts": [{"name": "testenv", "context": context}],
            "current-context": "testenv",
        }

    def _launch(self, name: str, argv: list[str]) -> _Proc:
        proc = _Proc(name=name, argv=argv, log=self.dir / f"{name}.log")
        proc.start(detach=self.detach)
        self._procs[name] = proc
        return proc

    def start_etcd(self) -> None:
        proc = self._launch(
            "etcd",
            [
                str(self.assets.etcd),
                "--data-dir", str(self.dir / "etcd"),
                "--listen-client-urls", self.etcd_url,
                "--advertise-client-urls", self.etcd_url,
                "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-cluster", f"default=http://127.0.0.1:{self.etcd_peer_port}",
                "--unsafe-no-fsync",
            ],
        )  # fmt: skip
        self._wait("etcd", proc, lambda: _http_ok(f"{self.etcd_url}/health"), timeout=30)

    def start_apiserver(self) -> None:
        """Start (or restart, on the same port) the API server."""
        d = self.dir
        proc = self._launch(
            "kube-apiserver",
            [
                str(self.assets.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                "--insecure-port=0",
                f"--cert-dir={d / 'certs'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,OwnerReferencesPermissionEnforcement,ResourceQuota",
                "--enable-priority-and-fairness=false",
                *self.apiserver_flags,
            ],
        )
        self._wait("kube-apiserver", proc, lambda: self._api_ok("/readyz"), timeout=60)

    def stop_apiserver(self, sig: int = signal.SIGTERM) -> None:
        proc = self._procs.pop("kube-apiserver", None)
        if proc is not None:
            proc.stop(sig)

    def start_controller_manager(self) -> None:
        if self.assets.kube_controller_manager is None:
            raise ControlPlaneError("kube-controller-manager not provisioned; run: hack/testenv.sh provision")
        d = self.dir
        proc = self._launch(
            "kube-controller-manager",
            [
                str(self.assets.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                f"--service-account-private-key-file={d / 'sa.key'}",
                f"--root-ca-file={d / 'certs' / 'apiserver.crt'}",
                f"--controllers={_KCM_CONTROLLERS}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.kcm_port}",
                "--port=0",
            ],
        )
        # The ServiceAccount controller creates `default` in every namespace and the token controller its
        # secret: when both exist, the controllers are running.
        self._wait("kube-controller-manager", proc, self._default_sa_has_token, timeout=60)

    def stop_controller_manager(self) -> None:
        proc = self._procs.pop("kube-controller-manager", None)
        if proc is not None:
            proc.stop()

    # ----------------------------------------------------------------------------------------- probing
    def _wait(self, name: str, proc: _Proc, ready: Any, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ControlPlaneError(f"{name} exited at start-up; last log lines:\n{proc.tail()}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.1)
        raise ControlPlaneError(f"{name} not ready within {timeout:.0f}s; last log lines:\n{proc.tail()}")

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 10,
    ) -> Any:
        """A JSON request to the API server as admin (for fixtures and probes; not the operator's client).

        Raises urllib.error.HTTPError for any non-2xx answer (its body holds the API Status).
        """
        return admin_request(
            self.url, self.token, path, method=method, body=body, content_type=content_type, timeout=timeout
        )

    def _api_ok(self, path: str) -> bool:
        try:
            self.request(path)
        except json.JSONDecodeError:
            return True  # /readyz answers "ok" in plain text
        except urllib.error.HTTPError:
            return False
        return True

    def _default_sa_has_token(self) -> bool:
        try:
            sa = self.request("/api/v1/namespaces/default/serviceaccounts/default")
        except urllib.error.HTTPError:
            return False
        return bool(sa.get("secrets"))


def admin_request(server: str, token: str, path: str, *, method: str = "GET", body: Any = None,
                  content_type: str = "application/json", timeout: float = 10) -> Any:  # fmt: skip
    """A JSON request with a bearer token to a test API server (self-signed: not verified); the parsed answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=timeout, context=_insecure()) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[ControlPlane]:
    """`with running(controller_manager=True) as cp:` a started control plane, stopped on exit."""
    cp = ControlPlane(**kwargs)
    with cp:
        yield cp
