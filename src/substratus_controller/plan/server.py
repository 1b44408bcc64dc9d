"""Server: build (optional) -> wait for the Model -> Service + Deployment -> Serving/Ready from readyReplicas.

The Model gates the first start, not a running Server. Without a ready replica, the Server's pods say why
(status/pods.py: CrashLoopBackOff, OOMKilled, ImagePullFailed, Unschedulable, ContainerConfigError), else
`DeploymentNotReady`."""

from __future__ import annotations

import re
from random import Random

from substratus_controller.api.v1.kinds import Server
from substratus_controller.constants import SA_MODEL_SERVER, ConditionType, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.params import params_configmap
from substratus_controller.render.server import server_deployment, server_service
from substratus_controller.runtime import resources as k8s
from substratus_controller.status.conditions import Cond, find
from substratus_controller.status.pods import first_problem, previous_pull_message

from .observation import ServerObservation
from .outcome import Plan
from .prologue import RENDER_ERRORS, begin, dependency_gate, invalid_after_build, runs_pods

SERVICE_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # DNS-1035: what the API server takes for a Service
NOT_A_SERVICE_NAME = (
    "metadata.name: a Server's name is its Service's name, which must start with a lower-case letter and hold "
    "only lower-case letters, digits and '-' (no dots)"
)


def plan_server(seen: ServerObservation, *, ctx: RenderContext, now: str, rng: Random) -> Plan:
    """The Server's Plan (`rng` is unused: a Server draws nothing at random)."""
    start = begin(Server, Kind.SERVER, seen, ctx=ctx, now=now, artifacts=False)
    if isinstance(start, Plan):
        return start
    if not SERVICE_NAME.fullmatch(start.obj.metadata.name):
        return invalid_after_build(seen.obj, Kind.SERVER, NOT_A_SERVICE_NAME, now, start)
    obj, raw, plan = start.obj, seen.obj, start.plan
    meta = obj.metadata
    deployment, model = seen.deployment, seen.model
    if deployment is None:  # the Model gates the first start, not a running Server
        gate = dependency_gate(model, name=obj.spec.model.name, what="Model", missing=Reason.MODEL_NOT_FOUND,
                               not_ready=Reason.MODEL_NOT_READY, ctype=ConditionType.SERVING)  # fmt: skip
        if gate is not None:
            return start.finish(raw, gate, now)
    model_url = ctx.cloud.artifact_url(Kind.MODEL, meta.namespace, obj.spec.model.name)  # never from status
    try:
        desired = server_deployment(obj, ctx, model_url=model_url)
        service = server_service(obj)
        params = params_configmap(obj, Kind.SERVER)
    except RENDER_ERRORS as exc:
        return invalid_after_build(raw, Kind.SERVER, exc, now, start)
    runs_pods(plan, SA_MODEL_SERVER, meta.namespace, ctx.cloud)
    plan.apply += [(k8s.CONFIGMAPS, params), (k8s.SERVICES, service), (k8s.DEPLOYMENTS, desired)]
    return start.finish(raw, serving(deployment, seen), now)


def serving(deployment: JSON | None, seen: ServerObservation) -> Cond:
    """Serving, from the Deployment's ready replicas, else what its pods say."""
    ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
    if ready > 0:
        return Cond(ConditionType.SERVING, True, Reason.DEPLOYMENT_READY, f"{ready} replica(s) ready")
    previous = find((seen.obj.get("status") or {}).get("conditions"), ConditionType.SERVING)
    problem = first_problem(seen.run_pods, restarts=True, previous=previous_pull_message(previous))
    if problem is not None:
        return Cond(ConditionType.SERVING, False, problem.reason, problem.message)
    return Cond(ConditionType.SERVING, False, Reason.DEPLOYMENT_NOT_READY, "Waiting for a ready replica")
