"""The kopf comparator of bench/suite.py: a kopf 1.45 operator doing the controller's work for a Model.

Per Model created: server-side apply the ServiceAccount `substratus-modeller`, the params ConfigMap and the
modeller Job (the controller's own bodies, as RAW writes them: bench/workload.py), then set
status.conditions through kopf's own status patch. Tuned as kopf's documentation advises for throughput:
Events not posted, watch timeouts set on both sides, 20 workers, progress kept in annotations only. The
children are written with the project's HTTP client (the same stack RAW and the controller use), so the
comparison is of frameworks.

Run by the suite as `kopf run --standalone --namespace NS bench/kopf_operator.py` with KUBECONFIG set.
kopf is a benchmark-only dependency (the `bench` extra), never a runtime one.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from bench.workload import first_writes, render_context
from substratus_controller.runtime.client import Client

STATE: dict[str, Client] = {}  # "client": the HTTP client, made at startup
CTX = render_context(os.environ.get("BENCH_ARTIFACTS", "file:///tmp/substratus-bench-artifacts"))


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310
    settings.watching.connect_timeout = 10
    settings.execution.max_workers = 20
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()
    STATE["client"] = await Client.connect(os.environ["KUBECONFIG"], timeout=60)


@kopf.on.cleanup()
async def close(**_: Any) -> None:
    if "client" in STATE:
        await STATE.pop("client").close()


@kopf.on.create("substratus.ai", "v1", "models")
async def created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    client = STATE["client"]
    children, status = first_writes(dict(body), CTX)
    for res, child in children:
        await client.apply(res, child, field_manager="kopf-bench", force=True)
    patch.status["conditions"] = status["conditions"]
