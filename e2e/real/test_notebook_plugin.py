"""Real tier: `kubectl notebook` against a real Jupyter pod, with kubectl v1.20 (Debian 12's) and a current one.

Through kubectl's own plugin mechanism (`kubectl notebook ...` finds `kubectl-notebook` on PATH): a real
port-forward answered over HTTP behind the token, a file saved through Jupyter synced back into the local
directory by the exec watcher, the pod replaced under the plugin (port-forward and sync follow the new pod,
whose own token the plugin prints; kubectl v1.20's port-forward alone would hang), and Ctrl-C suspending the
Notebook.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.conftest import eventually, get, manifest, wait_condition
from e2e.real.conftest import SEEN_TOKENS, kubectl_binaries
from e2e.real.pluginproc import Plugin, kubectl_on_path
from substratus_controller.constants import Kind
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.testing.controlplane import free_port
from substratus_controller.testing.stack import Stack

URL = re.compile(r"http://localhost:(\d+)/\?token=(\S+)")


def jupyter(port: int, path: str, token: str | None, *, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=json.dumps(body).encode() if body is not None else None
    )
    if token:
        req.add_header("Authorization", f"token {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:  # refused or reset: nothing forwards right now
        return 0, None


async def within(plugin: Plugin, check: Callable[[], Awaitable[bool]], *, timeout: float) -> None:
    try:
        await eventually(check, timeout=timeout, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the plugin printed:\n{plugin.drain()}") from None


@pytest.mark.parametrize("version", ["v1.20", "current"])
async def test_kubectl_notebook_on_a_real_pod(
    version: str, real_stack: Stack, real_client: Client, real_namespace: str, tmp_path: Path
) -> None:
    ns, client = real_namespace, real_client
    binary = kubectl_binaries()[version]
    work = tmp_path / "work"
    work.mkdir()
    nb = manifest("Notebook", "lab", {"image": "substratus.local/notebook:0.1", "resources": {"cpu": 0, "memory": 1}})
    (work / "notebook.yaml").write_text(yaml.safe_dump(nb))
    port = free_port()
    with kubectl_on_path(binary, tmp_path) as env:
        env["KUBECONFIG"] = str(real_stack.kubeconfig)
        version_out = (await asyncio.to_thread(subprocess.run, ["kubectl", "version", "--client"], env=env,
                                               capture_output=True, text=True, check=True)).stdout  # fmt: skip
        assert ("v1.20." in version_out) == (version == "v1.20"), version_out
        plugin = Plugin(["kubectl", "notebook", "-n", ns, "-d", str(work), "--no-build", "--no-open-browser",
                         "--port", str(port), "-v"], env)  # fmt: skip
        try:
            url = await asyncio.to_thread(plugin.wait_for, URL, 150)
            assert int(url.group(1)) == port
            token = url.group(2)
            SEEN_TOKENS.append(token)

            # the real Jupyter, through the real port-forward, behind its token
            status, body = await asyncio.to_thread(jupyter, port, "/api/status", token)
            assert status == 200, plugin.drain()
            assert "started" in body
            assert (await asyncio.to_thread(jupyter, port, "/api/status", None))[0] == 403

            # a file saved through Jupyter (into the writable /content) comes back into the local directory
            saved = {"type": "file", "format": "text", "content": "hello from the pod\n"}
            status, _ = await asyncio.to_thread(
                jupyter, port, "/api/contents/notes.txt", token, method="PUT", body=saved
            )
            assert status in (200, 201)

            def synced(name: str, text: str) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    path = work / name
                    return path.is_file() and path.read_text() == text

                return check

            await within(plugin, synced("notes.txt", "hello from the pod\n"), timeout=30)

            # the pod is replaced under the plugin: port-forward and sync follow the new pod
            first = await client.get(k8s.PODS, "lab-notebook", ns)
            await client.delete(k8s.PODS, "lab-notebook", ns)
            await asyncio.to_thread(plugin.wait_for, "was replaced", 60)
            # each Pod has its own token (issue 13 §7): the plugin reads the new one and prints the new URL
            await asyncio.to_thread(plugin.wait_for, "the new pod has its own token", 150)
            old_token, token = token, (await asyncio.to_thread(plugin.wait_for, URL, 10)).group(2)
            SEEN_TOKENS.append(token)
            assert token != old_token

            async def new_pod_serves() -> bool:
                try:
                    pod = await client.get(k8s.PODS, "lab-notebook", ns)
                except NotFound:
                    return False
                if pod["metadata"]["uid"] == first["metadata"]["uid"]:
                    return False
                code, _ = await asyncio.to_thread(jupyter, port, "/api/status", token)
                return code == 200

            await within(plugin, new_pod_serves, timeout=120)
            assert (await asyncio.to_thread(jupyter, port, "/api/status", old_token))[0] == 403
            again = {"type": "file", "format": "text", "content": "after the restart\n"}
            status, _ = await asyncio.to_thread(
                jupyter, port, "/api/contents/again.txt", token, method="PUT", body=again
            )
            assert status in (200, 201)
            await within(plugin, synced("again.txt", "after the restart\n"), timeout=30)
        finally:
            if plugin.proc.poll() is None:
                plugin.proc.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                code = await asyncio.to_thread(plugin.proc.wait, 60)
            except subprocess.TimeoutExpired:
                plugin.proc.kill()
                raise
        output = plugin.drain()
        assert code == 0, output
        assert "suspended" in output, output

    obj = await get(client, Kind.NOTEBOOK, ns, "lab")
    assert obj["spec"]["suspend"] is True
    await wait_condition(client, Kind.NOTEBOOK, ns, "lab", "Serving", "False", reason="Suspended", timeout=60)

    async def pod_gone() -> bool:
        try:
            await client.get(k8s.PODS, "lab-notebook", ns)
        except NotFound:
            return True
        return False

    await eventually(pod_gone, timeout=90, interval=1)
