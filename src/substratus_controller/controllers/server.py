"""Server: build (optional) -> wait for the Model -> Service + Deployment -> Serving/Ready from readyReplicas.

Without a ready replica, the Server's pods say why (status/pods.py: CrashLoopBackOff, OOMKilled,
ImagePullFailed, Unschedulable, ContainerConfigError), else `DeploymentNotReady`."""

from __future__ import annotations

from substratus_controller.api.v1.kinds import Server
from substratus_controller.constants import SA_MODEL_SERVER, ConditionType, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import server_name
from substratus_controller.render.params import params_configmap
from substratus_controller.render.server import server_deployment, server_service
from substratus_controller.runtime import resources as k8s
from substratus_controller.status.conditions import Cond, find
from substratus_controller.status.pods import first_problem, previous_pull_message

from .engine import Caches, KindReconciler, Plan
from .plans import artifacts_of, begin, dependency_gate, invalid_plan, render_errors, status_of


def plan_server(raw: JSON, *, ctx: RenderContext, caches: Caches, now: str, stored_md5: str | None = None) -> Plan:
    start = begin(Server, Kind.SERVER, raw, ctx=ctx, caches=caches, now=now, stored_md5=stored_md5, artifacts=False)
    if isinstance(start, Plan):
        return start
    obj, plan, build, extra = start.obj, start.plan, start.build, start.extra
    meta = obj.metadata
    ns = meta.namespace

    def finish(main: Cond | None) -> Plan:
        plan.status = status_of(raw, Kind.SERVER, main=main, blockers=build.blockers, now=now, extra=extra)
        return plan

    deployment = caches.deployments.get(ns, server_name(meta.name))
    model = caches.models.get(ns, obj.spec.model.name)
    if deployment is None or model is None:  # the Model gates the first start, not a running Server
        gate = dependency_gate(model, name=obj.spec.model.name, what="Model", missing=Reason.MODEL_NOT_FOUND,
                               not_ready=Reason.MODEL_NOT_READY, ctype=ConditionType.SERVING)  # fmt: skip
        if gate is not None and deployment is None:
            return finish(gate)
    model_url = (
        artifacts_of(model, Kind.MODEL, ctx.cloud)
        if model is not None
        else ctx.cloud.artifact_url(Kind.MODEL, ns, obj.spec.model.name)
    )
    try:
        desired = server_deployment(obj, ctx, model_url=model_url)
        service = server_service(obj)
        params = params_configmap(obj, Kind.SERVER)
    except render_errors() as exc:
        return invalid_plan(raw, Kind.SERVER, exc, now, build=build)
    plan.service_accounts.append(SA_MODEL_SERVER)
    plan.apply += [(k8s.CONFIGMAPS, params), (k8s.SERVICES, service), (k8s.DEPLOYMENTS, desired)]
    ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
    if ready > 0:
        return finish(Cond(ConditionType.SERVING, True, Reason.DEPLOYMENT_READY, f"{ready} replica(s) ready"))
    previous = find((raw.get("status") or {}).get("conditions"), ConditionType.SERVING)
    problem = first_problem(caches.pods_of(Kind.SERVER, ns, meta.name), restarts=True,
                            previous=previous_pull_message(previous))  # fmt: skip
    if problem is not None:
        return finish(Cond(ConditionType.SERVING, False, problem.reason, problem.message))
    return finish(Cond(ConditionType.SERVING, False, Reason.DEPLOYMENT_NOT_READY, "Waiting for a ready replica"))


class ServerReconciler(KindReconciler):
    kind = Kind.SERVER

    def plan(self, obj: JSON, now: str, stored_md5: str | None = None) -> Plan:
        return plan_server(obj, ctx=self.op.ctx, caches=self.op.caches, now=now, stored_md5=stored_md5)
