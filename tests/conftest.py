"""Shared fixtures: one real control plane per test session (etcd + kube-apiserver + controller-manager).

The control plane is never mocked. When its binaries are missing the session fails with the command that
provisions them (`hack/testenv.sh provision`); nothing is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from substratus_controller.api.v1.crd import build_crds
from substratus_controller.testing import ControlPlane

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane(controller_manager=True)
    with cp:
        yield cp


def api_error(exc: urllib.error.HTTPError) -> dict[str, Any]:
    """The Status object of a failed API request."""
    return dict(json.loads(exc.read() or b"{}"))


def install_crds(cp: ControlPlane, crds: list[dict[str, Any]] | None = None, timeout: float = 30) -> None:
    """Create (or replace) the CRDs and wait until each is Established and served."""
    for crd in crds or build_crds():
        name = crd["metadata"]["name"]
        try:
            cp.request("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", method="POST", body=crd)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise AssertionError(api_error(exc)) from exc
            current = cp.request(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            replacement = {
                **crd,
                "metadata": {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            cp.request(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", method="PUT", body=replacement
            )
    deadline = time.monotonic() + timeout
    for crd in crds or build_crds():
        name = crd["metadata"]["name"]
        plural = crd["spec"]["names"]["plural"]
        group_version = f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
        while True:
            got = cp.request(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conds = {c["type"]: c["status"] for c in got.get("status", {}).get("conditions", [])}
            if conds.get("Established") == "True":
                try:
                    cp.request(f"/apis/{group_version}/{plural}?limit=1")
                    break
                except urllib.error.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {name} not established: {conds}")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> ControlPlane:
    install_crds(control_plane)
    return control_plane


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.request("/api/v1/namespaces", method="POST", body={"metadata": {"name": name}})
    yield name
    with contextlib.suppress(urllib.error.HTTPError):
        control_plane.request(f"/api/v1/namespaces/{name}", method="DELETE")


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Callable[..., subprocess.CompletedProcess[str]]:
    binary = shutil.which("kubectl")
    if binary is None:
        raise AssertionError("kubectl is not installed; run hack/bootstrap.sh (it installs it)")

    def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KUBECONFIG=str(control_plane.kubeconfig))
        proc = subprocess.run(
            [binary, *args], input=input, capture_output=True, text=True, env=env, timeout=60, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    return run
