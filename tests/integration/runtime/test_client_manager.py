"""Client credentials from kubeconfig exec plugins (and reloading them on a 401); manager supervision."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.manager import Manager, ManagerError, ManagerOptions
from substratus_controller.runtime.resource import Resource
from substratus_controller.testing import ControlPlane

pytestmark = pytest.mark.integration

EXEC = """import json, pathlib, sys
token = pathlib.Path(sys.argv[1]).read_text().strip()
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


def exec_kubeconfig(cp: ControlPlane, tmp_path: Path, token_file: Path) -> Path:
    config = cp.kubeconfig_dict()
    config["users"] = [{"name": "admin", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": ["-c", EXEC, str(token_file)],
    }}}]  # fmt: skip
    path = tmp_path / "exec.kubeconfig"
    path.write_text(json.dumps(config))
    return path


async def test_exec_plugin_credentials_and_reload_on_401(control_plane: ControlPlane, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(control_plane.token)
    client = await Client.connect(exec_kubeconfig(control_plane, tmp_path, token_file))
    try:
        assert (await client.get(k8s.NAMESPACES, "default"))["metadata"]["name"] == "default"
        # The plugin's credential changes (e.g. rotated): a client holding a stale token gets a 401, reloads
        # the configuration (re-running the plugin) and retries once.
        stale = await Client.connect(exec_kubeconfig(control_plane, tmp_path, token_file))
        token_file.write_text("not-a-valid-token")
        stale_cfg = stale._cfg
        stale_cfg.api_key["BearerToken"] = "Bearer not-a-valid-token"
        token_file.write_text(control_plane.token)
        assert (await stale.get(k8s.NAMESPACES, "default"))["metadata"]["name"] == "default"
        codes = {
            s.labels["code"]
            for m in stale.metrics.registry.collect()
            for s in m.samples
            if s.name == "rest_client_requests_total"
        }
        assert {"401", "200"} <= codes
        await stale.close()
    finally:
        await client.close()


async def test_a_failing_supervised_task_stops_the_manager_with_its_name(control_plane: ControlPlane) -> None:
    client = await Client.connect(control_plane.kubeconfig)
    manager = Manager(client, ManagerOptions(metrics_address="0", probe_address="0"))

    async def broken() -> None:
        await asyncio.sleep(0.2)
        raise ValueError("watcher exploded")

    manager.add_runnable("broken-watcher", broken, needs_leader=False)
    try:
        with pytest.raises(ManagerError, match="broken-watcher stopped unexpectedly: ValueError"):
            await asyncio.wait_for(manager.run(), 20)
    finally:
        await client.close()


async def test_caches_that_cannot_sync_fail_start_up_clearly(control_plane: ControlPlane) -> None:
    client = await Client.connect(control_plane.kubeconfig)
    manager = Manager(client, ManagerOptions(metrics_address="0", probe_address="0", cache_sync_timeout=2))
    manager.cache.informer(Resource("nothing.example.com", "v1", "ghosts", "Ghost"))  # not served: 404s
    try:
        with pytest.raises(ManagerError, match="caches did not sync within 2s"):
            await asyncio.wait_for(manager.run(), 30)
    finally:
        await client.close()
