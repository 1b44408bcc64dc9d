"""Apply as declared steps: the effects that carry out a Plan, in the order they run (KubeRay's
`reconcileFuncs`). Each step does one thing and skips what the cache shows is already so.

Order, and why:
1. sign the upload URL      - before anything is written: a storage failure retries with nothing half-done
2. delete retired children  - foreground, so a replaced Job/Pod is gone before its successor is created
3. mount objects            - the driver's PersistentVolume/claim, before any pod mounts them
4. ServiceAccounts          - bound to the cloud identity first, then applied (pods run as them)
5. ready the registry       - a build Job about to start pushes there
6. ready artifact prefixes  - a workload about to start writes there
7. create once-only children (a notebook Pod's token Secret: created under a fresh name, never read back; a
   name found taken is an error, never an adoption)
8. server-side apply children, in the Plan's order; when the API server refuses one (4xx: nothing written),
   what step 7 created is deleted again, so a Pod write that keeps failing (a quota) leaves no Secrets
9. write spec.image          - a finished build
10. report                   - the status, written once and only when it changed; Events for transitions

Any step may raise RetryableError (the controller retries with backoff); later steps then do not run.
Before the steps, `taken_children` looks for children whose names are taken by objects that are not ours
(plan/ownership.py); the engine then carries out the conflict report instead of the Plan.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from substratus_controller.cloud.base import StorageError
from substratus_controller.constants import FIELD_MANAGER, WARNING_REASONS
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import Plan
from substratus_controller.plan.ownership import describe, ours
from substratus_controller.plan.upload import URL_LIFETIME
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.cache import CachedResource
from substratus_controller.runtime.controller import RetryableError
from substratus_controller.runtime.errors import AlreadyExists, ApiError, NotFound, ServerError
from substratus_controller.runtime.resource import Resource
from substratus_controller.status.conditions import transitions

from .gather import STORAGE_TIMEOUT
from .operator import Operator


@dataclass(frozen=True)
class Target:
    """The object a Plan is carried out for."""

    obj: JSON
    resource: Resource
    cache: CachedResource
    created: list[tuple[Resource, JSON]] = field(default_factory=list)  # by create_children, this reconcile

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])


T = TypeVar("T")
Step = Callable[[Operator, Target, Plan], Awaitable[None]]


async def bounded(call: Awaitable[T], what: str) -> T:
    """Await a storage/registry call with the outbound timeout; failures become RetryableError."""
    try:
        return await asyncio.wait_for(call, STORAGE_TIMEOUT)
    except (StorageError, TimeoutError) as exc:
        raise RetryableError(f"{what}: {exc}") from None


async def taken_children(op: Operator, target: Target, plan: Plan) -> list[str]:
    """The children the Plan would write whose names are taken by objects that are not ours.

    The caches hold only objects labelled as ours; a child they lack is looked up once, live (the first
    write of a child, or a name someone else took), so a steady reconcile makes no extra request."""
    uid = str(target.obj["metadata"].get("uid", ""))
    taken = []
    accounts = [(k8s.SERVICEACCOUNTS, sa) for sa in plan.service_accounts]
    for resource, desired in [*plan.mounts, *accounts, *plan.apply]:
        meta = desired["metadata"]
        existing = op.caches.of(resource).get(meta.get("namespace"), meta["name"])
        if existing is None:
            try:
                existing = await op.client.get(resource, meta["name"], meta.get("namespace"))
            except NotFound:
                continue
        if not ours(desired, existing, uid):
            taken.append(describe(existing, resource.kind))
    return taken


async def sign_upload(op: Operator, target: Target, plan: Plan) -> None:
    if plan.sign_upload is None:
        return
    url, md5_hex = plan.sign_upload
    signed = await bounded(
        op.cloud.signed_upload_url(url, md5_hex=md5_hex, expires_in=URL_LIFETIME), "signing the upload URL"
    )
    plan.status.setdefault("buildUpload", {})["signedURL"] = signed


async def delete_children(op: Operator, target: Target, plan: Plan) -> None:
    for resource, child in plan.delete:
        meta = child["metadata"]
        with contextlib.suppress(NotFound):
            await op.client.delete(
                resource, meta["name"], target.namespace, uid=meta.get("uid"), propagation_policy="Foreground"
            )
        op.caches.forget(resource, child)


async def apply_mounts(op: Operator, target: Target, plan: Plan) -> None:
    for resource, child in plan.mounts:
        await op.applier.apply(resource, child, cache=op.caches.of(resource))


async def ensure_service_accounts(op: Operator, target: Target, plan: Plan) -> None:
    """Apply each ServiceAccount; bind the cloud identity only when the cached one is not up to date."""
    cache = op.caches.serviceaccounts
    for desired in plan.service_accounts:
        name = desired["metadata"]["name"]
        if op.applier.up_to_date(op.applier.stamped(desired), cache.get(target.namespace, name)):
            continue
        await bounded(
            op.cloud.bind_identity(service_account=name, namespace=target.namespace),
            f"binding ServiceAccount {name} to the cloud identity",
        )
        await op.applier.apply(k8s.SERVICEACCOUNTS, desired, cache=cache)


async def prepare_image(op: Operator, target: Target, plan: Plan) -> None:
    if plan.new_image is not None:
        await bounded(op.cloud.prepare_image(plan.new_image), f"preparing the registry for {plan.new_image}")


async def prepare_artifacts(op: Operator, target: Target, plan: Plan) -> None:
    for url in plan.prepare:
        await op.cloud.prepare_artifacts(url, ["artifacts"])


async def create_children(op: Operator, target: Target, plan: Plan) -> None:
    for resource, child in plan.create:
        name = child["metadata"]["name"]
        try:
            await op.client.create(resource, child)
        except AlreadyExists:
            # The name was drawn for this create; an object under it is not ours, and using it would hand
            # its author the Pod's token. The retry draws another name.
            raise RetryableError(f"{resource.kind} {name} already exists and was not created by substratus") from None
        target.created.append((resource, child))


async def apply_children(op: Operator, target: Target, plan: Plan) -> None:
    try:
        for resource, child in plan.apply:
            await op.applier.apply(resource, child, cache=op.caches.of(resource))
    except ApiError as exc:
        if 400 <= exc.code < 500 and not isinstance(exc, ServerError):  # refused: nothing was written
            await undo_created(op, target)
        raise


async def undo_created(op: Operator, target: Target) -> None:
    """Delete what create_children made this reconcile (best effort: a leftover is owned by the object)."""
    for resource, child in target.created:
        with contextlib.suppress(ApiError):
            await op.client.delete(resource, child["metadata"]["name"], target.namespace)
    target.created.clear()


async def write_spec_image(op: Operator, target: Target, plan: Plan) -> None:
    if plan.spec_image is None:
        return
    obj = target.obj
    body = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": obj["metadata"]["name"], "namespace": target.namespace},
        "spec": {"image": plan.spec_image},
    }
    result = await op.client.apply(target.resource, body, field_manager=FIELD_MANAGER, force=True)
    target.cache.observe(result)
    op.applier.writes += 1


async def report(op: Operator, target: Target, plan: Plan) -> None:
    """Write the status when it changed; an Event for each condition transition."""
    obj, status = target.obj, plan.status
    before = (obj.get("status") or {}).get("conditions")
    written = await op.applier.apply_status(target.resource, obj, status, cache=target.cache)
    if written is None:
        return
    for cond in transitions(before, status.get("conditions") or ()):
        if cond["type"] == "Ready" and cond["status"] == "False":
            continue  # the condition that blocks Ready has its own event
        warning = cond["status"] == "False" and cond["reason"] in WARNING_REASONS
        op.recorder.event(
            obj,
            type="Warning" if warning else "Normal",
            reason=cond["reason"],
            message=cond.get("message") or f"{cond['type']} is {cond['status']}",
        )


STEPS: tuple[Step, ...] = (
    sign_upload,
    delete_children,
    apply_mounts,
    ensure_service_accounts,
    prepare_image,
    prepare_artifacts,
    create_children,
    apply_children,
    write_spec_image,
    report,
)


async def carry_out(op: Operator, target: Target, plan: Plan) -> None:
    """Run every step, in order."""
    for step in STEPS:
        await step(op, target, plan)
