"""`kubectl applybuild` and `kubectl notebook`, run as the installed console scripts against the whole system.

The plugins run as subprocesses with KUBECONFIG pointing at the e2e stack (real API server, the controller
process with the local driver and its upload endpoint, the simulated kubelet). Uploads, builds, conditions,
Secrets and suspend are all real.

Stand-in: the simulated kubelet runs no containers, so the kubelet's streaming API (port-forward, exec)
cannot work here. For `kubectl notebook` a stand-in `kubectl` (e2e/plugin_fake_kubectl.py) is put first on
the plugin's PATH: it listens on the local port for `port-forward` (failing a scripted number of times
first), replays scripted watcher output for `exec ... python3 -c`, serves file contents for
`exec ... cat`, logs every call, and runs the real kubectl for anything else. The tests assert the calls the
plugin made (pod, container, ports, namespace, the retry) and their effect on the local directory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import condition, eventually, get, wait_condition
from substratus_controller.cloud.base import BucketURL
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import Kind
from substratus_controller.plugins.sync import MAX_SYNC_BYTES
from substratus_controller.plugins.tarball import pack
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.testing.controlplane import free_port
from substratus_controller.testing.stack import Stack

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
FAKE_KUBECTL = Path(__file__).with_name("plugin_fake_kubectl.py")


def script(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} is missing: run `.venv/bin/pip install -e . --no-deps` to install the scripts"
    return str(path)


def manifest(path: Path, kind: str, name: str, spec: dict[str, Any] | None = None) -> Path:
    obj = {"apiVersion": "substratus.ai/v1", "kind": kind, "metadata": {"name": name}, "spec": spec or {}}
    path.write_text(json.dumps(obj))
    return path


def context(root: Path) -> Path:
    """A build context with a .dockerignore, an executable, a symlink and files to leave out."""
    files = {
        "Dockerfile": "FROM python:3.11-slim\nCOPY . /content\n",
        ".dockerignore": "# not for the image\n*.log\nsecrets.env\n/data\n!data/keep.txt\n**/__pycache__\n",
        "train.py": "print('train')\n",
        "src/lib.py": "X = 1\n",
        "src/__pycache__/lib.cpython-311.pyc": "\0",
        "secrets.env": "TOKEN=nope\n",
        "debug.log": "noise\n",
        "data/big.bin": "0" * 1000,
        "data/keep.txt": "keep\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "train.py").chmod(0o755)
    (root / "link.py").symlink_to(root / "train.py")
    return root


async def run(argv: list[str], env: dict[str, str], timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return subprocess.CompletedProcess(argv, proc.returncode or 0, out.decode(), err.decode())


def stored_upload(stack: Stack, kind: Kind, namespace: str, name: str, md5_hex: str) -> Path:
    """Where the upload verified against `md5_hex` is stored (an immutable file named by its md5)."""
    driver = LocalDriver(artifact_bucket=BucketURL.parse(f"file://{stack.workdir / 'artifacts'}"))
    return Path(driver.upload_url(kind, namespace, name, md5_hex).path)


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


# ------------------------------------------------------------------------------------------------ applybuild
async def test_applybuild_uploads_builds_and_skips_an_unchanged_context(
    stack: Stack, client: Client, namespace: str, tmp_path: Path
) -> None:
    ctx = context(tmp_path / "ctx")
    spec_file = manifest(tmp_path / "model.yaml", "Model", "trained", {"params": {"epochs": 1}})
    argv = [script("kubectl-applybuild"), "-n", namespace, "-f", str(spec_file), "--timeout", "2m", str(ctx)]
    first = await run(argv, stack.env())
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "model.substratus.ai/trained serverside-applied"
    assert lines[1].startswith("model.substratus.ai/trained built (image ")
    assert "model.substratus.ai/trained: build context uploaded" in first.stderr
    assert "pod/trained-model-bld-" in first.stderr
    assert ": Succeeded" in first.stderr

    obj = await get(client, Kind.MODEL, namespace, "trained")
    assert condition(obj, "Built")["status"] == "True"
    upload = obj["spec"]["build"]["upload"]
    stored = stored_upload(stack, Kind.MODEL, namespace, "trained", upload["md5Checksum"])
    assert md5_of(stored) == upload["md5Checksum"]
    assert upload["md5Checksum"] == pack(ctx, tmp_path / "again.tar.gz").md5_hex, "same tree, same md5"
    assert obj["spec"]["image"].endswith(f":{upload['md5Checksum']}")
    with tarfile.open(stored) as tar:
        names = sorted(tar.getnames())
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert names == [".dockerignore", "Dockerfile", "data", "data/keep.txt", "src", "src/lib.py", "train.py"]
    assert modes["train.py"] == 0o755
    assert modes["src/lib.py"] == 0o644

    # The same tree again: storage already holds it, nothing is uploaded, and it is still built.
    before = stored.stat().st_mtime_ns
    second = await run(argv, stack.env())
    assert second.returncode == 0, second.stderr
    assert "build context already uploaded" in second.stderr
    assert "build context uploaded" not in second.stderr
    assert stored.stat().st_mtime_ns == before
    again = await get(client, Kind.MODEL, namespace, "trained")
    assert again["spec"]["build"]["upload"]["requestID"] != upload["requestID"]
    assert again["spec"]["build"]["upload"]["md5Checksum"] == upload["md5Checksum"]
    assert condition(again, "Built")["status"] == "True"


async def test_applybuild_without_a_dockerfile_fails(
    stack: Stack, client: Client, namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "train.py").write_text("print()\n")
    spec_file = manifest(tmp_path / "model.yaml", "Model", "nodocker")
    result = await run(
        [script("kubectl-applybuild"), "-n", namespace, "-f", str(spec_file), str(tmp_path / "ctx")], stack.env()
    )
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'ctx'} does not contain a Dockerfile\n"
    assert result.stdout == ""
    with pytest.raises(NotFound):
        await get(client, Kind.MODEL, namespace, "nodocker")


async def test_applybuild_wait_waits_until_ready(stack: Stack, client: Client, namespace: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx")
    spec_file = manifest(tmp_path / "dataset.yaml", "Dataset", "loaded")
    result = await run(
        [script("kubectl-applybuild"), "-n", namespace, "-f", str(spec_file), "--wait", "--timeout", "2m", str(ctx)],
        stack.env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "dataset.substratus.ai/loaded built and Ready"
    obj = await get(client, Kind.DATASET, namespace, "loaded")
    assert condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Complete")["status"] == "True"


async def test_applybuild_reports_a_failed_build(stack: Stack, namespace: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx")
    spec_file = manifest(tmp_path / "model.yaml", "Model", "bad-build")  # the kubelet fails its builder pods
    result = await run(
        [script("kubectl-applybuild"), "-n", namespace, "-f", str(spec_file), "--timeout", "2m", str(ctx)], stack.env()
    )
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: model.substratus.ai/bad-build: build failed: Builder Job bad-build-model-bld failed")
    assert ": Failed (builder: exit code 1" in result.stderr


# ------------------------------------------------------------------------------------------------ notebook
class FakeKubectl:
    """The stand-in kubectl's directory: its scripted behaviour and the log of calls (see module docstring)."""

    def __init__(self, root: Path, stack: Stack) -> None:
        real = shutil.which("kubectl")
        assert real is not None
        self.state = root / "state"
        (self.state / "pod").mkdir(parents=True)
        bindir = root / "bin"
        bindir.mkdir()
        wrapper = bindir / "kubectl"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_KUBECTL}" "$@"\n')
        wrapper.chmod(0o755)
        self.env = {
            **stack.env(),
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_KUBECTL_DIR": str(self.state),
            "FAKE_KUBECTL_REAL": real,
        }

    def fail_port_forwards(self, times: int) -> None:
        (self.state / "port_forward_failures").write_text(str(times))

    def pod_file(self, path: str, text: str) -> None:
        target = self.state / "pod" / path.removeprefix("/content/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def watch_events(self, events: list[dict[str, Any]]) -> None:
        (self.state / "watch_events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

    def calls(self, verb: str) -> list[list[str]]:
        log = self.state / "calls.jsonl"
        argvs = [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []
        return [a for a in argvs if a and a[0] == verb]


class Plugin:
    """A running `kubectl notebook`: stdout lines as they come, stderr collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._err = asyncio.create_task(self._collect_stderr())

    @classmethod
    async def start(cls, argv: list[str], env: dict[str, str]) -> Plugin:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        return cls(proc)

    async def _collect_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr.append(line.decode().rstrip("\n"))

    async def line_starting(self, prefix: str, timeout: float = 120.0) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"exited before printing {prefix!r}:\n" + "\n".join(self.stderr))
                line = raw.decode().rstrip("\n")
                self.stdout.append(line)
                if line.startswith(prefix):
                    return line

    async def interrupt(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._err
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(Exception):
            await self._err


async def token_of(client: Client, namespace: str, name: str) -> str:
    """The token of the Notebook's current Pod (in the Secret its annotation names)."""
    pod = await client.get(k8s.PODS, f"{name}-notebook", namespace)
    secret = await client.get(k8s.SECRETS, pod["metadata"]["annotations"]["substratus.ai/token-secret"], namespace)
    return base64.b64decode(secret["data"]["token"]).decode()


async def test_notebook_from_a_manifest_forwards_and_suspends_on_ctrl_c(
    stack: Stack, client: Client, namespace: str, tmp_path: Path
) -> None:
    """-f: unsuspend, wait Ready, retry a failing port-forward, print the URL with the Secret's token, SIGINT."""
    fake = FakeKubectl(tmp_path / "fake", stack)
    fake.fail_port_forwards(1)  # the first port-forward fails: the plugin retries
    spec_file = manifest(tmp_path / "nb.yaml", "Notebook", "lab", {"image": "example.com/jupyter:1", "suspend": True})
    port = free_port()
    plugin = await Plugin.start(
        [script("kubectl-notebook"), "-n", namespace, "-f", str(spec_file), "--no-open-browser", "--port", str(port),
         "--timeout", "2m"],
        fake.env,
    )  # fmt: skip
    try:
        url = await plugin.line_starting("http://localhost:")
        assert plugin.stdout[0] == "notebook.substratus.ai/lab serverside-applied"
        assert url == f"http://localhost:{port}/?token={await token_of(client, namespace, 'lab')}"
        running = await get(client, Kind.NOTEBOOK, namespace, "lab")
        assert running["spec"]["suspend"] is False
        assert condition(running, "Ready")["status"] == "True"
        forwards = fake.calls("port-forward")
        assert forwards == [["port-forward", "-n", namespace, "pod/lab-notebook", f"{port}:8888"]] * 2
        assert any("retrying in 1s" in line for line in plugin.stderr)
        assert fake.calls("exec") == [], "no sync without -d"
        code = await plugin.interrupt()
    finally:
        await plugin.kill()
    assert code == 0, "\n".join(plugin.stderr)
    assert "notebook.substratus.ai/lab suspended" in plugin.stderr
    suspended = await get(client, Kind.NOTEBOOK, namespace, "lab")
    assert suspended["spec"]["suspend"] is True
    await wait_condition(client, Kind.NOTEBOOK, namespace, "lab", "Serving", "False", reason="Suspended")


async def test_notebook_dir_builds_and_syncs_changes_back(
    stack: Stack, client: Client, namespace: str, tmp_path: Path
) -> None:
    """-d: build from the directory, sync the stand-in watcher's events into it, SIGTERM suspends like Ctrl-C."""
    fake = FakeKubectl(tmp_path / "fake", stack)
    work = tmp_path / "work"
    work.mkdir()
    (work / "Dockerfile").write_text("FROM jupyter/base-notebook\nCOPY . /content\n")
    manifest(work / "notebook.yaml", "Notebook", "synced")
    (work / "src").mkdir()
    (work / "src" / "model.py").write_text("VERSION = 1\n")
    (work / "old.py").write_text("obsolete\n")
    (work / "scratch").mkdir()
    (work / "scratch" / "tmp.txt").write_text("tmp\n")
    fake.pod_file("/content/src/model.py", "VERSION = 2\n")
    fake.pod_file("/content/analysis.ipynb", '{"cells": []}\n')
    fake.pod_file("/content/data/train.csv", "a,b\n")
    fake.watch_events(
        [
            {"path": "/content/src/model.py", "op": "WRITE"},
            {"path": "/content/analysis.ipynb", "op": "CREATE"},
            {"path": "/content/old.py", "op": "REMOVE"},  # a file of the laptop's, not of this sync: kept
            {"path": "/content/scratch/tmp.txt", "op": "REMOVE"},  # likewise
            {"path": "/content/data/train.csv", "op": "CREATE"},  # a mounted bucket: skipped
            {"path": "/content/.ipynb_checkpoints/analysis-checkpoint.ipynb", "op": "CREATE"},  # dot-dir: skipped
        ]
    )
    port = free_port()
    plugin = await Plugin.start(
        [script("kubectl-notebook"), "-n", namespace, "-d", str(work), "--no-open-browser", "--port", str(port),
         "--timeout", "2m"],
        fake.env,
    )  # fmt: skip
    try:
        await plugin.line_starting("http://localhost:")

        async def synced() -> bool:
            return (work / "src" / "model.py").read_text() == "VERSION = 2\n" and (work / "analysis.ipynb").exists()

        await eventually(synced, timeout=30)
        await asyncio.sleep(1)  # the REMOVEs were handled too (events are applied in order): they kept the files
        assert (work / "old.py").read_text() == "obsolete\n"
        assert (work / "scratch" / "tmp.txt").read_text() == "tmp\n"
        code = await plugin.interrupt(signal.SIGTERM)
    finally:
        await plugin.kill()
    assert code == 0, "\n".join(plugin.stderr)
    assert not (work / "data").exists()
    assert not (work / ".ipynb_checkpoints").exists()
    assert "sync: updated src/model.py" in plugin.stderr
    assert not [line for line in plugin.stderr if line.startswith("sync: removed")], plugin.stderr

    watcher = [a for a in fake.calls("exec") if "python3" in a]
    assert watcher, "the watcher ran in the pod"
    assert watcher[0][:8] == ["exec", "-n", namespace, "synced-notebook", "-c", "notebook", "--", "python3"]
    assert watcher[0][-3] == "/content"  # then the poll interval and the pod start time (`since`)
    reads = [a for a in fake.calls("exec") if "head" in a]
    assert ["exec", "-n", namespace, "synced-notebook", "-c", "notebook", "--", "head", "-c",
            str(MAX_SYNC_BYTES + 1), "--", "/content/src/model.py"] in reads  # fmt: skip
    assert all("/content/data/train.csv" not in a for a in reads)
    assert fake.calls("port-forward") == [["port-forward", "-n", namespace, "pod/synced-notebook", f"{port}:8888"]]

    nb = await get(client, Kind.NOTEBOOK, namespace, "synced")
    assert nb["spec"]["suspend"] is True
    assert condition(nb, "Built")["status"] == "True"
    stored = stored_upload(stack, Kind.NOTEBOOK, namespace, "synced", nb["spec"]["build"]["upload"]["md5Checksum"])
    assert md5_of(stored) == nb["spec"]["build"]["upload"]["md5Checksum"]
