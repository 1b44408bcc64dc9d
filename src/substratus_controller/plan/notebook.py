"""Notebook: build (optional) -> suspend? -> wait for Model/Dataset -> token Secret, PVC, Pod -> Serving/Ready.

- `spec.suspend: true` deletes the Pod and reports `Serving=False/Suspended` (the build still proceeds, so
  the image is ready when the notebook is resumed). Resuming recreates the Pod.
- The token is random per Pod, in a Secret `<name>-notebook-token-<nonce>` the controller creates just before
  the Pod and never reads; the Pod gets it through a secretKeyRef. The nonce is drawn then, so nobody can
  plant a Secret under that name beforehand (a co-tenant who could would know the token: issue 13 §7); a
  Pod that exists keeps the Secret it names, and the Secret is deleted with its Pod.
- A Pod whose desired spec changed is deleted and recreated (Pod specs are immutable).
- A Pod that is not ready says why when it can (status/pods.py: CrashLoopBackOff, OOMKilled,
  ImagePullFailed, Unschedulable, ContainerConfigError).
- Optional isolation (`--notebook-network-policy deny-ingress`): a NetworkPolicy `<name>-notebook` admitting
  no ingress to the Pod, applied before the Pod; it stays while suspended and goes with the Notebook.
- Optional persistence: the annotation `substratus.ai/notebook-storage: <size>` (e.g. 20Gi) adds a PVC
  `<name>-notebook` mounted at /content/work; it survives suspend/resume and is deleted with the Notebook.
"""

from __future__ import annotations

import re
from random import Random

from substratus_controller.api.v1.kinds import Notebook
from substratus_controller.constants import (
    ANNOTATION_APPLIED,
    ANNOTATION_NOTEBOOK_STORAGE,
    NETWORK_POLICY_DENY_INGRESS,
    SA_NOTEBOOK,
    ConditionType,
    Kind,
    Reason,
)
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import (
    is_notebook_token_secret_name,
    notebook_pvc_name,
    notebook_token_secret_name,
)
from substratus_controller.render.notebook import (
    notebook_network_policy,
    notebook_pod,
    notebook_pvc,
    notebook_token_secret,
    pod_token_secret,
)
from substratus_controller.render.params import params_configmap
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.stamp import is_up_to_date, stamp
from substratus_controller.status.conditions import Cond, find
from substratus_controller.status.pods import pod_problem, pod_ready, previous_pull_message

from .observation import NotebookObservation
from .outcome import Plan
from .prologue import (
    RENDER_ERRORS,
    Started,
    begin,
    dependency_gate,
    dependency_url,
    invalid_after_build,
    new_token,
    new_token_nonce,
    runs_pods,
    wait_for_image,
)

STORAGE_ANNOTATION = ANNOTATION_NOTEBOOK_STORAGE
_QUANTITY = re.compile(r"[1-9][0-9]*(Ki|Mi|Gi|Ti)")  # whole value (fullmatch: no trailing newline)


def notebook_gate(obj: Notebook, seen: NotebookObservation) -> Cond | None:
    """The first unmet dependency of a Pod start (Model, then Dataset), or None."""
    if obj.spec.model:
        gate = dependency_gate(seen.model, name=obj.spec.model.name, what="Model", missing=Reason.MODEL_NOT_FOUND,
                               not_ready=Reason.MODEL_NOT_READY, ctype=ConditionType.SERVING)  # fmt: skip
        if gate is not None:
            return gate
    if obj.spec.dataset:
        return dependency_gate(seen.dataset, name=obj.spec.dataset.name, what="Dataset",
                               missing=Reason.DATASET_NOT_FOUND, not_ready=Reason.DATASET_NOT_READY,
                               ctype=ConditionType.SERVING)  # fmt: skip
    return None


def pod_condition(pod: JSON, raw: JSON) -> Cond:
    """Serving, from a running Pod that is up to date: ready, or why not."""
    if pod_ready(pod):
        return Cond(ConditionType.SERVING, True, Reason.POD_READY, "Notebook is ready")
    previous = find((raw.get("status") or {}).get("conditions"), ConditionType.SERVING)
    problem = pod_problem(pod, restarts=True, previous=previous_pull_message(previous))
    if problem is not None:
        return Cond(ConditionType.SERVING, False, problem.reason, problem.message)
    phase = (pod.get("status") or {}).get("phase", "Pending")
    return Cond(ConditionType.SERVING, False, Reason.POD_NOT_READY, f"Notebook Pod is {phase}, not ready yet")


def delete_pod(plan: Plan, obj: Notebook, pod: JSON) -> None:
    """Delete the Pod and the token Secret it names, when that is one the controller named (a Pod from
    before the nonce names `<name>-notebook-token`, which stays: nobody can tell whose it is)."""
    plan.delete.append((k8s.PODS, pod))
    secret = pod_token_secret(pod)
    if secret is not None and is_notebook_token_secret_name(obj.metadata.name, secret):
        plan.delete.append((k8s.SECRETS, {"metadata": {"name": secret, "namespace": obj.metadata.namespace}}))


def plan_notebook(seen: NotebookObservation, *, ctx: RenderContext, now: str, rng: Random) -> Plan:
    """The Notebook's Plan; `rng` draws the token of a Pod about to be created."""
    # No image gate here: suspension is reported even while the image is being built.
    start = begin(Notebook, Kind.NOTEBOOK, seen, ctx=ctx, now=now, gate_image=False)
    if isinstance(start, Plan):
        return start
    obj, raw, pod = start.obj, seen.obj, seen.pod
    if obj.spec.suspend:
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            delete_pod(start.plan, obj, pod)
        return start.finish(raw, Cond(ConditionType.SERVING, False, Reason.SUSPENDED, "Notebook is suspended"), now)
    if not obj.spec.image:
        return wait_for_image(raw, Kind.NOTEBOOK, start, now=now)
    storage = obj.metadata.annotations.get(STORAGE_ANNOTATION)
    if storage is not None and not _QUANTITY.fullmatch(storage):
        error = f"annotation {STORAGE_ANNOTATION}: {storage!r} is not a size like 20Gi"
        return invalid_after_build(raw, Kind.NOTEBOOK, error, now, start)
    gate = notebook_gate(obj, seen) if pod is None else None  # dependencies gate the start, not a running Pod
    if gate is not None:
        return start.finish(raw, gate, now)
    return plan_pod(start, seen, storage, ctx=ctx, now=now, rng=rng)


def plan_pod(start: Started[Notebook], seen: NotebookObservation, storage: str | None, *, ctx: RenderContext,
             now: str, rng: Random) -> Plan:  # fmt: skip
    """The notebook's children (params, PVC, token Secret, Pod) and Serving, once the Pod may run."""
    obj, raw, pod, plan = start.obj, seen.obj, seen.pod, start.plan
    meta = obj.metadata
    model_name = obj.spec.model.name if obj.spec.model else None
    dataset_name = obj.spec.dataset.name if obj.spec.dataset else None
    token_secret = (pod_token_secret(pod) if pod is not None else None) or notebook_token_secret_name(
        meta.name, new_token_nonce(rng)
    )
    try:
        desired = notebook_pod(
            obj,
            ctx,
            token_secret=token_secret,
            model_url=dependency_url(model_name, Kind.MODEL, meta.namespace, ctx.cloud),
            dataset_url=dependency_url(dataset_name, Kind.DATASET, meta.namespace, ctx.cloud),
            pvc=notebook_pvc_name(meta.name) if storage else None,
        )
        params = params_configmap(obj, Kind.NOTEBOOK)
    except RENDER_ERRORS as exc:
        return invalid_after_build(raw, Kind.NOTEBOOK, exc, now, start)
    runs_pods(plan, SA_NOTEBOOK, meta.namespace, ctx.cloud)
    plan.apply.append((k8s.CONFIGMAPS, params))
    if storage:
        plan.apply.append((k8s.PERSISTENTVOLUMECLAIMS, notebook_pvc(obj, size=storage)))
    if ctx.notebook_network_policy == NETWORK_POLICY_DENY_INGRESS:  # before the Pod: isolated from its start
        plan.apply.append((k8s.NETWORKPOLICIES, notebook_network_policy(obj)))
    if pod is None:
        plan.prepare.append(ctx.cloud.artifact_url(Kind.NOTEBOOK, meta.namespace, meta.name))
        plan.create.append((k8s.SECRETS, notebook_token_secret(obj, name=token_secret, token=new_token(rng))))
        plan.apply.append((k8s.PODS, desired))
        waiting = Cond(ConditionType.SERVING, False, Reason.POD_NOT_READY, "Waiting for the notebook Pod to start")
        return start.finish(raw, waiting, now)
    if pod["metadata"].get("deletionTimestamp"):
        going = Cond(ConditionType.SERVING, False, Reason.POD_NOT_READY, "Waiting for the old Pod to go")
        return start.finish(raw, going, now)
    if not is_up_to_date(stamp(desired, ANNOTATION_APPLIED), pod, ANNOTATION_APPLIED):
        delete_pod(plan, obj, pod)  # Pod specs are immutable: replace it
        changed = Cond(ConditionType.SERVING, False, Reason.SPEC_CHANGED, "Spec changed; recreating the Pod")
        return start.finish(raw, changed, now)
    return start.finish(raw, pod_condition(pod, raw), now)
