"""The test control plane itself: free ports, coexistence, and stopping exactly what it started."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from substratus_controller.testing import ControlPlane
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(")")[1].split()[0] != "Z"


def test_two_control_planes_coexist_and_stop_only_their_processes(control_plane: ControlPlane) -> None:
    session_pids = control_plane.pids
    with ControlPlane() as other:
        assert other.apiserver_port != control_plane.apiserver_port
        assert other.request("/version")["gitVersion"].startswith("v1.20")
        pids = other.pids
        assert set(pids) == {"etcd", "kube-apiserver"}
        assert all(_alive(p) for p in pids.values())
    assert not any(_alive(p) for p in pids.values())
    assert all(_alive(p) for p in session_pids.values())
    assert control_plane.request("/version")["gitVersion"].startswith("v1.20")


def test_session_control_plane_runs_the_controller_manager(control_plane: ControlPlane) -> None:
    assert set(control_plane.pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    sa = control_plane.request("/api/v1/namespaces/default/serviceaccounts/default")
    assert sa["secrets"], "the token controller (kube-controller-manager) populated the default ServiceAccount"


def test_testenv_script_up_and_down(tmp_path: Path) -> None:
    env = dict(os.environ, SUBSTRATUS_TESTENV_STATE=str(tmp_path / "state"), PYTHON=os.sys.executable)  # type: ignore[attr-defined]
    script = str(ROOT / "hack" / "testenv.sh")
    up = subprocess.run([script, "up"], capture_output=True, text=True, env=env, timeout=180, check=False)
    assert up.returncode == 0, up.stderr
    kubeconfig = up.stdout.strip().removeprefix("export KUBECONFIG=")
    try:
        import json

        state = json.loads((tmp_path / "state" / "state.json").read_text())
        pids = [p["pid"] for p in state["processes"].values()]
        assert len(pids) == 3
        assert all(_alive(p) for p in pids)
        ns = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "get", "namespace", "default", "-o", "name"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert ns.stdout.strip() == "namespace/default", ns.stderr
    finally:
        down = subprocess.run([script, "down"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert not any(_alive(p) for p in pids)
    assert not (tmp_path / "state").exists()
