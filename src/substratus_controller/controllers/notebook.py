"""Notebook: build (optional) -> suspend? -> wait for Model/Dataset -> token Secret, PVC, Pod -> Serving/Ready.

- `spec.suspend: true` deletes the Pod and reports `Serving=False/Suspended` (the build still proceeds, so
  the image is ready when the notebook is resumed). Resuming recreates the Pod.
- The token is random per Notebook, in a Secret `<name>-notebook-token` the controller creates (once, when the
  Pod is about to be created) and never reads; the Pod gets it through a secretKeyRef.
- A Pod whose desired spec changed is deleted and recreated (Pod specs are immutable).
- A Pod that is not ready says why when it can (status/pods.py: CrashLoopBackOff, OOMKilled,
  ImagePullFailed, Unschedulable, ContainerConfigError).
- Optional persistence: the annotation `substratus.ai/notebook-storage: <size>` (e.g. 20Gi) adds a PVC
  `<name>-notebook` mounted at /content/work; it survives suspend/resume and is deleted with the Notebook.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from substratus_controller.api.v1.kinds import Notebook
from substratus_controller.constants import ANNOTATION_NOTEBOOK_STORAGE, SA_NOTEBOOK, ConditionType, Kind, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import (
    notebook_pod_name,
    notebook_pvc_name,
    notebook_token_secret_name,
)
from substratus_controller.render.notebook import notebook_pod, notebook_pvc, notebook_token_secret
from substratus_controller.render.params import params_configmap
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.applier import is_up_to_date, stamp
from substratus_controller.status.conditions import Cond, find
from substratus_controller.status.pods import pod_problem, pod_ready, previous_pull_message

from .engine import DIGEST_ANNOTATION, Caches, KindReconciler, Plan
from .plans import artifacts_of, begin, dependency_gate, invalid_plan, render_errors, status_of, wait_for_image

STORAGE_ANNOTATION = ANNOTATION_NOTEBOOK_STORAGE
_QUANTITY = re.compile(r"^[1-9][0-9]*(Ki|Mi|Gi|Ti)$")


def plan_notebook(raw: JSON, *, ctx: RenderContext, caches: Caches, now: str, stored_md5: str | None = None,
                  new_token: Any = lambda: secrets.token_urlsafe(32)) -> Plan:  # fmt: skip
    # No image gate here: suspension is reported even while the image is being built.
    start = begin(
        Notebook, Kind.NOTEBOOK, raw, ctx=ctx, caches=caches, now=now, stored_md5=stored_md5, gate_image=False
    )
    if isinstance(start, Plan):
        return start
    obj, plan, build, extra = start.obj, start.plan, start.build, start.extra
    meta = obj.metadata
    ns = meta.namespace
    pod = caches.pods.get(ns, notebook_pod_name(meta.name))

    def finish(main: Cond | None) -> Plan:
        plan.status = status_of(raw, Kind.NOTEBOOK, main=main, blockers=build.blockers, now=now, extra=extra)
        return plan

    if obj.spec.suspend:
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            plan.delete.append((k8s.PODS, pod))
        return finish(Cond(ConditionType.SERVING, False, Reason.SUSPENDED, "Notebook is suspended"))
    if not obj.spec.image:
        return wait_for_image(raw, Kind.NOTEBOOK, plan, build, extra=extra, now=now)
    storage = meta.annotations.get(STORAGE_ANNOTATION)
    if storage is not None and not _QUANTITY.match(storage):
        return invalid_plan(raw, Kind.NOTEBOOK, f"annotation {STORAGE_ANNOTATION}: {storage!r} is not a size like 20Gi",
                            now, build=build)  # fmt: skip
    model = caches.models.get(ns, obj.spec.model.name) if obj.spec.model else None
    data = caches.datasets.get(ns, obj.spec.dataset.name) if obj.spec.dataset else None
    if pod is None:  # dependencies gate the start of the Pod, not a running one
        gates = []
        if obj.spec.model:
            gates.append(dependency_gate(model, name=obj.spec.model.name, what="Model", missing=Reason.MODEL_NOT_FOUND,
                                         not_ready=Reason.MODEL_NOT_READY, ctype=ConditionType.SERVING))  # fmt: skip
        if obj.spec.dataset:
            gates.append(dependency_gate(data, name=obj.spec.dataset.name, what="Dataset",
                                         missing=Reason.DATASET_NOT_FOUND, not_ready=Reason.DATASET_NOT_READY,
                                         ctype=ConditionType.SERVING))  # fmt: skip
        gate = next((g for g in gates if g is not None), None)
        if gate is not None:
            return finish(gate)
    token_secret = notebook_token_secret_name(meta.name)
    pvc = notebook_pvc_name(meta.name) if storage else None
    try:
        desired = notebook_pod(
            obj,
            ctx,
            token_secret=token_secret,
            model_url=artifacts_of(model, Kind.MODEL, ctx.cloud) if model is not None else None,
            dataset_url=artifacts_of(data, Kind.DATASET, ctx.cloud) if data is not None else None,
            pvc=pvc,
        )
        params = params_configmap(obj, Kind.NOTEBOOK)
    except render_errors() as exc:
        return invalid_plan(raw, Kind.NOTEBOOK, exc, now, build=build)
    plan.service_accounts.append(SA_NOTEBOOK)
    plan.apply.append((k8s.CONFIGMAPS, params))
    if storage:
        plan.apply.append((k8s.PERSISTENTVOLUMECLAIMS, notebook_pvc(obj, size=storage)))
    if pod is None:
        plan.prepare.append(ctx.cloud.artifact_url(Kind.NOTEBOOK, ns, meta.name))
        plan.create.append((k8s.SECRETS, notebook_token_secret(obj, token=new_token())))
        plan.apply.append((k8s.PODS, desired))
        return finish(Cond(ConditionType.SERVING, False, Reason.POD_NOT_READY, "Waiting for the notebook Pod to start"))
    if pod["metadata"].get("deletionTimestamp"):
        return finish(Cond(ConditionType.SERVING, False, Reason.POD_NOT_READY, "Waiting for the old Pod to go"))
    if not is_up_to_date(stamp(desired, DIGEST_ANNOTATION), pod, DIGEST_ANNOTATION):
        plan.delete.append((k8s.PODS, pod))  # Pod specs are immutable: replace it
        return finish(Cond(ConditionType.SERVING, False, Reason.SPEC_CHANGED, "Spec changed; recreating the Pod"))
    if pod_ready(pod):
        return finish(Cond(ConditionType.SERVING, True, Reason.POD_READY, "Notebook is ready"))
    previous = find((raw.get("status") or {}).get("conditions"), ConditionType.SERVING)
    problem = pod_problem(pod, restarts=True, previous=previous_pull_message(previous))
    if problem is not None:
        return finish(Cond(ConditionType.SERVING, False, problem.reason, problem.message))
    phase = (pod.get("status") or {}).get("phase", "Pending")
    return finish(Cond(ConditionType.SERVING, False, Reason.POD_NOT_READY, f"Notebook Pod is {phase}, not ready yet"))


class NotebookReconciler(KindReconciler):
    kind = Kind.NOTEBOOK

    def plan(self, obj: JSON, now: str, stored_md5: str | None = None) -> Plan:
        return plan_notebook(obj, ctx=self.op.ctx, caches=self.op.caches, now=now, stored_md5=stored_md5)
