"""What every Substratus reconciler shares: the Plan, the caches, and the observe -> plan -> apply -> report loop.

A reconcile reads only from the informer caches (never a live GET), computes a `Plan` with one pure call,
applies the Plan's children in order (ServiceAccounts first), skipping what the cache shows is already so,
and writes the status once, only when it changed. Condition transitions become Events.

Invariants:
- `plan_*` functions are pure: same observation, same `now` -> same Plan.
- Invalid specs (schema-valid but semantically wrong) yield an `InvalidSpec`/`UnsupportedGPU` condition and an
  Event, and the reconcile ends without a retry: only a change to the object brings it back.
- A Plan never deletes anything but children it owns (ownerReference to this object, by uid).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from pydantic import ValidationError

from substratus_controller.api.v1.kinds import Dataset, Model, Notebook, Server
from substratus_controller.cloud.base import BucketURL, CloudDriver, StorageError
from substratus_controller.constants import FIELD_MANAGER, GROUP, Kind, Reason, kind_label
from substratus_controller.jsontypes import JSON
from substratus_controller.render.context import RenderContext
from substratus_controller.render.serviceaccount import service_account
from substratus_controller.resources import DATASETS, MODELS, NOTEBOOKS, RESOURCE_OF, SERVERS
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.applier import Applier
from substratus_controller.runtime.cache import CachedResource
from substratus_controller.runtime.client import AlreadyExists, Client, NotFound
from substratus_controller.runtime.controller import Request, Result, RetryableError
from substratus_controller.runtime.events import EventRecorder
from substratus_controller.runtime.resource import Resource
from substratus_controller.runtime.times import now_rfc3339
from substratus_controller.status.conditions import transitions

from .build import needs_storage_check
from .upload import URL_LIFETIME

log = structlog.get_logger("substratus.controllers")

DIGEST_ANNOTATION = f"{GROUP}/applied"
STORAGE_TIMEOUT = 30.0  # seconds for one storage call (S4: every outbound call has a timeout)
MODEL_CLASS: dict[Kind, type[Dataset | Model | Notebook | Server]] = {
    Kind.DATASET: Dataset,
    Kind.MODEL: Model,
    Kind.NOTEBOOK: Notebook,
    Kind.SERVER: Server,
}

# Events are warnings when a condition turns False for one of these reasons.
WARNING_REASONS = {
    Reason.BUILD_FAILED, Reason.JOB_FAILED, Reason.INVALID_SPEC, Reason.UNSUPPORTED_GPU, Reason.MODEL_NOT_FOUND,
    Reason.BASE_MODEL_NOT_FOUND, Reason.DATASET_NOT_FOUND, Reason.CONTAINER_FAILED, Reason.OOM_KILLED,
    Reason.IMAGE_PULL_FAILED, Reason.CRASH_LOOP_BACK_OFF, Reason.UNSCHEDULABLE, Reason.CONTAINER_CONFIG_ERROR,
    Reason.REGISTRY_NOT_CONFIGURED,
}  # fmt: skip
INDEX_PARENT = "substratus.ai/parent"  # pods by the object they run for: "<namespace>/<kind>/<name>"


def parent_name(pod: JSON, kind: Kind) -> str | None:
    """The `kind` object a pod runs for, from its `substratus.ai/<kind>` label (Job and ReplicaSet pods are
    not owned by the object itself, so ownerReferences do not lead there)."""
    return (pod["metadata"].get("labels") or {}).get(kind_label(kind))


def parent_keys(pod: JSON) -> list[str]:
    """The INDEX_PARENT keys of a pod (`<namespace>/<kind>/<name>`)."""
    ns = pod["metadata"].get("namespace")
    return [f"{ns}/{kind.singular}/{name}" for kind in Kind if (name := parent_name(pod, kind))]


@dataclass
class Plan:
    """Everything one reconcile will do, computed without I/O."""

    status: JSON
    service_accounts: list[str] = field(default_factory=list)  # fixed per-namespace SAs to ensure
    apply: list[tuple[Resource, JSON]] = field(default_factory=list)  # server-side applied, in order
    create: list[tuple[Resource, JSON]] = field(default_factory=list)  # created when absent (never read back)
    delete: list[tuple[Resource, JSON]] = field(default_factory=list)  # owned children to delete
    spec_image: str | None = None  # a finished build: write spec.image
    prepare: list[BucketURL] = field(default_factory=list)  # artifact prefixes to ready before a workload starts
    sign_upload: tuple[BucketURL, str] | None = None  # (object, md5): sign a URL into status.buildUpload
    new_image: str | None = None  # a build is starting: let the registry accept this image
    requeue_after: float | None = None


@dataclass
class Caches:
    """The informer caches the reconcilers read (children caches hold only objects labelled as ours)."""

    datasets: CachedResource
    models: CachedResource
    notebooks: CachedResource
    servers: CachedResource
    jobs: CachedResource
    pods: CachedResource
    deployments: CachedResource
    services: CachedResource
    configmaps: CachedResource
    serviceaccounts: CachedResource
    pvcs: CachedResource
    pvs: CachedResource | None = None  # only for drivers that mount through PersistentVolumes

    def pods_of(self, kind: Kind, namespace: str, name: str, *, run: bool = True) -> list[JSON]:
        """The cached pods labelled for `kind`/`name` (those with `role: run` unless `run` is False)."""
        pods = self.pods.by_index(INDEX_PARENT, f"{namespace}/{kind.singular}/{name}")
        return [p for p in pods if not run or (p["metadata"].get("labels") or {}).get("role") == "run"]

    def of(self, resource: Resource) -> CachedResource:
        if resource == k8s.PERSISTENTVOLUMES:
            if self.pvs is None:
                raise KeyError("PersistentVolumes are not cached for this cloud driver")
            return self.pvs
        return {
            DATASETS: self.datasets,
            MODELS: self.models,
            NOTEBOOKS: self.notebooks,
            SERVERS: self.servers,
            k8s.JOBS: self.jobs,
            k8s.PODS: self.pods,
            k8s.DEPLOYMENTS: self.deployments,
            k8s.SERVICES: self.services,
            k8s.CONFIGMAPS: self.configmaps,
            k8s.SERVICEACCOUNTS: self.serviceaccounts,
            k8s.PERSISTENTVOLUMECLAIMS: self.pvcs,
        }[resource]


@dataclass
class Operator:
    """What reconcilers need at run time."""

    client: Client
    caches: Caches
    recorder: EventRecorder
    ctx: RenderContext
    now: Callable[[], str] = now_rfc3339

    def __post_init__(self) -> None:
        self.applier = Applier(self.client, field_manager=FIELD_MANAGER, digest_annotation=DIGEST_ANNOTATION)

    @property
    def cloud(self) -> CloudDriver:
        return self.ctx.cloud


class KindReconciler:
    """Drives observe -> plan -> apply -> report for one kind; subclasses supply `plan`."""

    kind: Kind

    def __init__(self, op: Operator) -> None:
        self.op = op
        self.resource = RESOURCE_OF[self.kind]
        self.cache = op.caches.of(self.resource)

    def plan(self, obj: JSON, now: str, stored_md5: str | None = None) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError

    async def __call__(self, req: Request) -> Result:
        obj = self.cache.get(req.namespace, req.name)  # observe
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return Result()  # gone or going: the garbage collector removes the children
        stored_md5 = await self.observe_storage(obj)
        plan = self.plan(obj, self.op.now(), stored_md5)  # plan
        await self.apply(obj, plan)  # apply
        await self.report(obj, plan.status)  # report
        return Result(requeue_after=plan.requeue_after)

    async def observe_storage(self, obj: JSON) -> str | None:
        """What storage holds for an upload that still has to be built (None when not needed or absent)."""
        try:
            typed = MODEL_CLASS[self.kind].model_validate({**obj, "status": {}})
        except ValidationError:
            return None  # the plan reports InvalidSpec
        if not needs_storage_check(typed, self.kind, self.op.ctx):
            return None
        url = self.op.cloud.upload_url(self.kind, typed.metadata.namespace, typed.metadata.name)
        try:
            return await asyncio.wait_for(self.op.cloud.object_md5(url), STORAGE_TIMEOUT)
        except (StorageError, TimeoutError) as exc:
            raise RetryableError(f"reading the uploaded build context from storage: {exc}") from None

    async def apply(self, obj: JSON, plan: Plan) -> None:
        op = self.op
        ns = obj["metadata"]["namespace"]
        if plan.sign_upload is not None:
            url, md5_hex = plan.sign_upload
            try:
                signed = await asyncio.wait_for(
                    op.cloud.signed_upload_url(url, md5_hex=md5_hex, expires_in=URL_LIFETIME), STORAGE_TIMEOUT
                )
            except (StorageError, TimeoutError) as exc:
                raise RetryableError(f"signing the upload URL: {exc}") from None
            plan.status.setdefault("buildUpload", {})["signedURL"] = signed
        for resource, child in plan.delete:
            meta = child["metadata"]
            with contextlib.suppress(NotFound):
                await op.client.delete(resource, meta["name"], ns, uid=meta.get("uid"),
                                       propagation_policy="Foreground")  # fmt: skip
            op.caches.of(resource).forget(child)
        if plan.service_accounts:  # about to run pods: the bucket mounts' shared objects come first
            for child in op.cloud.mount_objects(ns):
                resource = k8s.PERSISTENTVOLUMES if child["kind"] == "PersistentVolume" else k8s.PERSISTENTVOLUMECLAIMS
                await op.applier.apply(resource, child, cache=op.caches.of(resource))
        for name in plan.service_accounts:
            await self.ensure_service_account(name, ns)
        if plan.new_image is not None:
            try:
                await asyncio.wait_for(op.cloud.prepare_image(plan.new_image), STORAGE_TIMEOUT)
            except (StorageError, TimeoutError) as exc:
                raise RetryableError(f"preparing the registry for {plan.new_image}: {exc}") from None
        for url in plan.prepare:
            await op.cloud.prepare_artifacts(url, ["artifacts"])
        for resource, child in plan.create:
            with contextlib.suppress(AlreadyExists):
                await op.client.create(resource, child)
        for resource, child in plan.apply:
            await op.applier.apply(resource, child, cache=op.caches.of(resource))
        if plan.spec_image is not None:
            body = {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "metadata": {"name": obj["metadata"]["name"], "namespace": ns},
                "spec": {"image": plan.spec_image},
            }
            result = await op.client.apply(self.resource, body, field_manager=FIELD_MANAGER, force=True)
            self.cache.observe(result)
            op.applier.writes += 1

    async def ensure_service_account(self, name: str, namespace: str) -> None:
        """Apply a shared ServiceAccount; bind the cloud identity only when the binding annotation is missing."""
        op = self.op
        desired = service_account(name, namespace, op.cloud)
        cache = op.caches.serviceaccounts
        if op.applier.up_to_date(op.applier.stamped(desired), cache.get(namespace, name)):
            return
        try:
            await asyncio.wait_for(op.cloud.bind_identity(service_account=name, namespace=namespace), STORAGE_TIMEOUT)
        except (StorageError, TimeoutError) as exc:
            raise RetryableError(f"binding ServiceAccount {name} to the cloud identity: {exc}") from None
        await op.applier.apply(k8s.SERVICEACCOUNTS, desired, cache=cache)

    async def report(self, obj: JSON, status: JSON) -> None:
        before = (obj.get("status") or {}).get("conditions")
        written = await self.op.applier.apply_status(self.resource, obj, status, cache=self.cache)
        if written is None:
            return
        for cond in transitions(before, status.get("conditions") or ()):
            if cond["type"] == "Ready" and cond["status"] == "False":
                continue  # the condition that blocks Ready has its own event
            warning = cond["status"] == "False" and cond["reason"] in WARNING_REASONS
            self.op.recorder.event(
                obj,
                type="Warning" if warning else "Normal",
                reason=cond["reason"],
                message=cond.get("message") or f"{cond['type']} is {cond['status']}",
            )
