"""The Server's Deployment and Service `<name>-server` (docs/upstream-behaviour.md §8, HEAD).

Invariants:
- Deployment: 1 replica, selector `substratus.ai/server: <name>, role: run` (immutable for its life),
  container `serve` (pull policy as for every workload: IfNotPresent when tagged), port `http-serve`
  8080, readiness `GET /` on `http-serve`, SA `model-server`, restricted security contexts, mounts
  params and the served Model's `artifacts/` read-only at /content/model.
- Service: ClusterIP, same selector, port `http` 8080/TCP -> `http-serve`.
- Env is sorted, so re-rendering an unchanged Server never rolls its Deployment.
"""

from __future__ import annotations

from substratus_controller.api.v1 import Server
from substratus_controller.cloud.base import BucketURL, Mount
from substratus_controller.constants import CONTAINER_SERVE, MODEL_PATH, ROLE_RUN, SA_MODEL_SERVER, SERVER_PORT, Kind
from substratus_controller.jsontypes import JSON

from ._pod import PodVolumes, workload_pod
from .bodies import child_metadata, identity
from .context import RenderContext
from .labels import labels, selector
from .names import server_name
from .workloads import ARTIFACTS_SUBDIR, MODEL_VOLUME

PORT_NAME = "http-serve"
SERVICE_PORT_NAME = "http"
REPLICAS = 1


def server_deployment(server: Server, ctx: RenderContext, *, model_url: BucketURL) -> JSON:
    """The Deployment `<name>-server` serving the Model at `model_url`."""
    name, _ = identity(server, Kind.SERVER)
    volumes = PodVolumes()
    volumes.add_params(Kind.SERVER, name)
    volumes.add_bucket(ctx, model_url, volume=MODEL_VOLUME, mount=Mount(ARTIFACTS_SUBDIR, MODEL_PATH, True))
    annotations, spec = workload_pod(
        server,
        ctx,
        container=CONTAINER_SERVE,
        service_account=SA_MODEL_SERVER,
        volumes=volumes,
        command=server.spec.command,
        container_extra={
            "ports": [{"name": PORT_NAME, "containerPort": SERVER_PORT}],
            "readinessProbe": {"httpGet": {"path": "/", "port": PORT_NAME}},
        },
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(server, Kind.SERVER, name=server_name(name), role=ROLE_RUN),
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": selector(Kind.SERVER, name)},
            "template": {
                "metadata": {"labels": labels(Kind.SERVER, name, ROLE_RUN), "annotations": annotations},
                "spec": spec,
            },
        },
    }


def server_service(server: Server) -> JSON:
    """The ClusterIP Service `<name>-server`: port `http` 8080 -> the pods' `http-serve`."""
    name, _ = identity(server, Kind.SERVER)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(server, Kind.SERVER, name=server_name(name), role=ROLE_RUN),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(Kind.SERVER, name),
            "ports": [{"name": SERVICE_PORT_NAME, "protocol": "TCP", "port": SERVER_PORT, "targetPort": PORT_NAME}],
        },
    }
