"""Real tier: every failure a real container can produce is reported from the pods' real state within 60 s, as a
False condition with a CamelCase reason, a message naming the cause, and a Warning Event; then nothing is
rewritten while the kubelet keeps retrying (no retry storm).

All the failing objects run at once in one namespace (it is faster than one after another); none requests
a CPU, so they fit the 2-core node together.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from e2e.conftest import condition, events_for, eventually, get, manifest, wait_condition
from substratus_controller.constants import Kind
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime.client import Client
from substratus_controller.testing.stack import Stack

SMALL = {"cpu": 0, "memory": 1}
TRAINER = "substratus.local/model-trainer:0.1"
# the node's own registry address: nothing listens there in this tier, so the pull fails without any traffic
# leaving the node (no DNS lookup, no internet)
MISSING_IMAGE = "10.244.0.1:5000/missing/model:1"

# (kind, name, spec, condition, reason, words the message must contain)
CASES: list[tuple[Kind, str, dict[str, Any], str, str, list[str]]] = [
    (Kind.MODEL, "exits-2", {"image": "substratus.local/model-importer:0.1", "resources": SMALL},
     "Complete", "JobFailed", ["exit code 2", "name"]),
    (Kind.DATASET, "unknown-corpus", {"image": "substratus.local/dataset-loader:0.1", "params": {"name": "nope"},
                                      "resources": SMALL},
     "Complete", "JobFailed", ["exit code 2", "squad"]),
    (Kind.MODEL, "pull-fails", {"image": MISSING_IMAGE, "resources": SMALL},
     "Complete", "ImagePullFailed", [MISSING_IMAGE]),
    (Kind.MODEL, "oom", {"image": TRAINER, "resources": SMALL,
                         "command": ["python3", "-c", "x = bytearray(3 << 30); print(len(x))"]},
     "Complete", "OOMKilled", ["spec.resources.memory"]),
    (Kind.MODEL, "no-gpu-here", {"image": TRAINER, "resources": {**SMALL, "gpu": {"type": "nvidia-t4", "count": 1}}},
     "Complete", "Unschedulable", ["nvidia.com/gpu"]),
    (Kind.DATASET, "missing-secret", {"image": "substratus.local/dataset-loader:0.1", "params": {"name": "squad"},
                                      "env": {"HF_TOKEN": "${{ secrets.hf-credentials.token }}"},
                                      "resources": SMALL},
     "Complete", "ContainerConfigError", ['secret "hf-credentials" not found']),
    (Kind.SERVER, "crashes", {"image": "substratus.local/model-server:0.1", "model": {"name": "base"},
                              "resources": SMALL,
                              "command": ["python3", "-c", "import sys; sys.exit('no weights in /content/model')"]},
     "Serving", "CrashLoopBackOff", ["exit code 1", "no weights in /content/model"]),
    (Kind.NOTEBOOK, "nb-pull-fails", {"image": MISSING_IMAGE, "resources": SMALL},
     "Serving", "ImagePullFailed", [MISSING_IMAGE]),
]  # fmt: skip


async def test_failures_of_real_containers_are_reported(
    real_stack: Stack, real_client: Client, real_namespace: str
) -> None:
    ns, client = real_namespace, real_client
    base = manifest("Model", "base", {"image": "substratus.local/model-importer:0.1",
                                      "params": {"name": "facebook/opt-125m"}, "resources": SMALL})  # fmt: skip
    await real_stack.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(base))
    await wait_condition(client, Kind.MODEL, ns, "base", "Ready", "True", timeout=60)
    for kind, name, spec, *_ in CASES:
        await real_stack.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest(kind.value, name, spec)))

    async def reported(kind: Kind, name: str, ctype: str, reason: str, words: list[str]) -> dict[str, Any]:
        obj = await wait_condition(client, kind, ns, name, ctype, "False", reason=reason, timeout=60)
        message = condition(obj, ctype)["message"]
        for word in words:
            assert word in message, f"{kind.value} {name}: {word!r} not in {message!r}"
        assert condition(obj, "Ready")["reason"] == reason
        return obj

    await asyncio.gather(*(reported(kind, name, ctype, reason, words) for kind, name, _, ctype, reason, words in CASES))

    for _kind, name, _, _, reason, _ in CASES:

        async def warned(name: str = name, reason: str = reason) -> bool:
            return any(
                e.get("type") == "Warning" and e.get("reason") == reason for e in await events_for(client, ns, name)
            )

        await eventually(warned, timeout=10)

    # No retry storm: the kubelet keeps retrying pulls, restarts and config errors, the scheduler keeps
    # retrying the GPU pod; the statuses must stay as they are (no write per retry).
    before = {name: (await get(client, kind, ns, name))["metadata"]["resourceVersion"] for kind, name, *_ in CASES}
    await asyncio.sleep(25)
    after = {name: (await get(client, kind, ns, name))["metadata"]["resourceVersion"] for kind, name, *_ in CASES}
    changed = {n: (await get(client, k, ns, n))["status"] for k, n, *_ in CASES if before[n] != after[n]}
    assert not changed, json.dumps(changed, indent=1)


async def test_a_fixed_spec_recovers_from_a_pull_failure(
    real_stack: Stack, real_client: Client, real_namespace: str
) -> None:
    """Level-based: the failure is not terminal; a corrected image runs (a new run) and completes."""
    ns, client = real_namespace, real_client
    spec = {"image": MISSING_IMAGE, "params": {"name": "facebook/opt-125m"}, "resources": SMALL}
    await real_stack.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest("Model", "m", spec)))
    await wait_condition(client, Kind.MODEL, ns, "m", "Complete", "False", reason="ImagePullFailed", timeout=60)
    await client.patch(RESOURCE_OF[Kind.MODEL], "m", {"spec": {"image": "substratus.local/model-importer:0.1"}}, ns)
    await wait_condition(client, Kind.MODEL, ns, "m", "Ready", "True", timeout=90)
