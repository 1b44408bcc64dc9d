"""Real tier: the whole chain (Dataset -> base Model -> trained Model -> Server -> Notebook) in real containers
from the reference images, through the CLI-started controller, with evidence of what the pods produced.

The chain is applied once (`chain`: examples/ in a namespace of this module) and the tests run in file order
on it: the evidence, a no-op resync, reruns that change the trained output, then deleting parents."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import WRITES, condition, eventually, get, metric_sum, resource_versions, wait_condition
from e2e.real.conftest import ROOT, namespace_for
from substratus_controller.constants import Kind
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.testing.stack import Stack

KINDS = "datasets,models,notebooks,servers"


def artifacts(stack: Stack, obj: dict[str, Any]) -> Path:
    """The object's artifact directory on the node (the local cloud's hostPath)."""
    return Path(obj["status"]["artifacts"]["url"].removeprefix("file://")) / "artifacts"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def complete(port: int, prompt: str) -> dict[str, Any]:
    body = json.dumps({"prompt": prompt, "max_tokens": 8}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


@pytest.fixture(scope="module")
async def chain(real_stack: Stack, real_client: Client) -> AsyncIterator[str]:
    """A namespace with examples/ applied and Ready (deleted, pods and all, after the module)."""
    async with namespace_for(real_client, "chain") as ns:
        await real_stack.kubectl("apply", "-n", ns, "-R", "-f", str(ROOT / "examples"))
        waited = await real_stack.kubectl(
            "wait", "-n", ns, "--for=condition=Ready", KINDS, "--all", "--timeout=180s", check=False
        )
        pods = (await real_stack.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False)).stdout
        assert waited.returncode == 0, f"{waited.stderr}\n{pods}\n{real_stack.tail_log()}"
        yield ns


async def test_chain_runs_in_real_containers(real_stack: Stack, real_client: Client, chain: str) -> None:
    ns, client = chain, real_client

    # The loader really ran as uid 1000/gid 3003 in a root-built image and wrote the shipped rows.
    ds = await get(client, Kind.DATASET, ns, "squad")
    data_dir = artifacts(real_stack, ds)
    rows = data_dir.joinpath("data.jsonl").read_text().splitlines()
    manifest = read_json(data_dir / "manifest.json")
    assert len(rows) == manifest["rows"] == 40
    assert json.loads(rows[0])["question"] == "Who wrote Hamlet?"
    st = os.stat(data_dir / "data.jsonl")
    assert (st.st_uid, st.st_gid) == (1000, 3003)

    # The importer's model, then the trainer's: it read the base model, the dataset and the params.
    base = await get(client, Kind.MODEL, ns, "facebook-opt-125m")
    base_config = read_json(artifacts(real_stack, base) / "config.json")
    assert (base_config["name"], base_config["kind"]) == ("facebook/opt-125m", "base")
    trained = await get(client, Kind.MODEL, ns, "facebook-opt-125m-squad")
    training = read_json(artifacts(real_stack, trained) / "training.json")
    assert training["epochs"] == 1
    assert training["batch_size"] == 8
    assert training["dataset_sha256"] == manifest["sha256"]
    assert training["rows"] == 40

    # The Server answers a completion from the trained model through a real port-forward.
    with real_stack.port_forward(ns, "svc/facebook-opt-125m-squad-server", 8080) as port:
        answer = await asyncio.to_thread(complete, port, "Who wrote Hamlet?")
    assert answer["choices"][0]["text"].strip() == "William Shakespeare"
    assert answer["model"] == "facebook/opt-125m-finetuned"

    # The Notebook: real Jupyter behind its token, /content writable, the model mounted read-only.
    nb_pod = "facebook-opt-125m-squad-notebook"
    out = await real_stack.kubectl("exec", "-n", ns, nb_pod, "--", "sh", "-c",
                                   "id -u; echo hi > /content/new.txt && cat /content/new.txt; ls /content; "
                                   "touch /content/model/x 2>&1 || true; echo HOME=$HOME")  # fmt: skip
    lines = out.stdout.splitlines()
    assert lines[0] == "1000"
    assert lines[1] == "hi"
    assert "welcome.ipynb" in lines  # the image's /content was copied into the writable one
    assert "Read-only file system" in out.stdout
    assert "HOME=/home/substratus" in out.stdout


async def test_noop_resync_with_real_pods_writes_nothing(real_stack: Stack, real_client: Client, chain: str) -> None:
    ns, client = chain, real_client
    await asyncio.sleep(3)  # let the last pod status updates land

    before = await resource_versions(client, ns)
    await real_stack.stop_controller()
    await real_stack.start_controller()

    async def drained() -> bool:
        return metric_sum(real_stack.metrics(), "controller_runtime_reconcile_total{") >= 5

    await eventually(drained, timeout=60)
    await asyncio.sleep(3)
    assert metric_sum(real_stack.metrics(), "rest_client_requests_total{", *WRITES) == 0
    assert await resource_versions(client, ns) == before


async def test_rerun_on_the_real_node_changes_the_trained_output(
    real_stack: Stack, real_client: Client, chain: str
) -> None:
    ns, client = chain, real_client
    trained = await get(client, Kind.MODEL, ns, "facebook-opt-125m-squad")
    out_dir = artifacts(real_stack, trained)
    first_model = (out_dir / "model.json").read_bytes()

    # epochs 1 -> 3: a new run (SpecChanged), a different model
    await client.patch(RESOURCE_OF[Kind.MODEL], "facebook-opt-125m-squad", {"spec": {"params": {"epochs": 3}}}, ns)
    await wait_condition(
        client, Kind.MODEL, ns, "facebook-opt-125m-squad", "Complete", "False", reason="SpecChanged", timeout=30
    )
    await wait_condition(client, Kind.MODEL, ns, "facebook-opt-125m-squad", "Ready", "True", timeout=90)
    assert read_json(out_dir / "training.json")["epochs"] == 3
    second_model = (out_dir / "model.json").read_bytes()
    assert second_model != first_model

    # another dataset (different content) -> another run, another model
    await real_stack.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "substratus.ai/v1", "kind": "Dataset", "metadata": {"name": "trivia"},
        "spec": {"image": "substratus.local/dataset-loader:0.1", "params": {"name": "trivia"},
                 "resources": {"cpu": 1, "memory": 1}},
    }))  # fmt: skip
    await wait_condition(client, Kind.DATASET, ns, "trivia", "Ready", "True", timeout=90)
    trivia = read_json(artifacts(real_stack, await get(client, Kind.DATASET, ns, "trivia")) / "manifest.json")
    await client.patch(
        RESOURCE_OF[Kind.MODEL], "facebook-opt-125m-squad", {"spec": {"dataset": {"name": "trivia"}}}, ns
    )
    await wait_condition(
        client, Kind.MODEL, ns, "facebook-opt-125m-squad", "Complete", "False", reason="SpecChanged", timeout=30
    )
    await wait_condition(client, Kind.MODEL, ns, "facebook-opt-125m-squad", "Ready", "True", timeout=90)
    training = read_json(out_dir / "training.json")
    assert training["dataset_sha256"] == trivia["sha256"]
    assert training["rows"] == trivia["rows"] == 20
    assert (out_dir / "model.json").read_bytes() not in (first_model, second_model)
    model = await get(client, Kind.MODEL, ns, "facebook-opt-125m-squad")
    assert condition(model, "Complete")["reason"] == "JobComplete"


async def test_deleting_a_parent_removes_its_real_pods(real_stack: Stack, real_client: Client, chain: str) -> None:
    ns, client = chain, real_client
    node = real_stack.node
    assert node is not None
    before = {c[2] for c in await asyncio.to_thread(node.running_containers) if c[0] == ns}
    assert {"serve", "notebook"} <= before, before
    await client.delete(RESOURCE_OF[Kind.SERVER], "facebook-opt-125m-squad", ns)
    await client.delete(RESOURCE_OF[Kind.NOTEBOOK], "facebook-opt-125m-squad", ns)

    async def gone() -> bool:
        pods = (await client.list(k8s.PODS, ns))["items"]
        running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
        for res, name in (
            (k8s.DEPLOYMENTS, "facebook-opt-125m-squad-server"),
            (k8s.SERVICES, "facebook-opt-125m-squad-server"),
        ):
            try:
                await client.get(res, name, ns)
                return False
            except NotFound:
                pass
        return not running

    await eventually(gone, timeout=90, interval=1)

    async def stopped_on_the_node() -> bool:  # the containers are gone from containerd too, not just the Pods
        left = {c[2] for c in await asyncio.to_thread(node.running_containers) if c[0] == ns}
        return not left & {"serve", "notebook"}

    await eventually(stopped_on_the_node, timeout=60, interval=1)
