"""The client side of a build: apply the object, answer the upload handshake, wait for Built (and Ready).

Protocol (docs/upstream-behaviour.md §3.3 and §10.2, with docs/decisions.md §2.1 and §5):
- The object is server-side applied with field manager `kubectl` (`force` only when asked); a conflict is an
  error that says to pass --force-conflicts.
- Then the object is watched (field selector `metadata.name=<name>`, from the applied resourceVersion;
  an expired watch is resumed from a fresh GET). For each version seen:
  - `status.buildUpload.signedURL` set with `requestID` equal to ours, and not yet used: PUT the tarball
    (Content-Type `application/octet-stream`, Content-MD5 = base64 of the raw md5). A 403 saying the URL
    expired is retried once, with a new requestID (re-applied); any other non-200 answer is an error.
  - `status.buildUpload.storedMD5Checksum` equal to our md5: storage already holds the context; no upload
    (a signed URL for our requestID would still be answered, should the controller ask for one).
  - Conditions count only when their `observedGeneration` is at least the applied generation, so a `Built`
    or `Ready` left from an earlier build is never mistaken for this one.
  - `Built=True`: built. `Built=False/BuildFailed`: error with the condition's message.
  - `Ready=False` with `InvalidSpec`/`UnsupportedGPU`: the spec cannot run; error (it will not change by
    itself). When waiting for Ready: `Ready=True` ends the wait; `BuildFailed`, `JobFailed` or
    `Suspended` are errors.
  - DELETED: error "object deleted". Timeouts are the caller's (asyncio.timeout); `describe()` summarises
    the last state seen for the message.
- The build pods (labels `substratus.ai/<kind>=<name>`, `role=build`) are watched on the side and their
  phase changes printed; pods that existed before are only reported when they change.
- Nothing printed holds the signed URL: errors about the PUT are redacted.
- The tarball goes only to an upload origin of this cluster (plugins/uploadorigin.py): a forged signedURL
  is refused with an error naming its origin.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from substratus_controller.constants import (
    FIELD_MANAGER_KUBECTL,
    GROUP,
    LABEL_ROLE,
    ROLE_BUILD,
    ConditionType,
    Kind,
    Reason,
    kind_label,
)
from substratus_controller.jsontypes import JSON
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime.backoff import Backoff
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unauthorized,
    Unavailable,
)
from substratus_controller.runtime.redact import redact
from substratus_controller.runtime.resource import Resource
from substratus_controller.runtime.resources import CONFIGMAPS, PODS
from substratus_controller.runtime.watchloop import RELISTED, WatchLoop

from .commandline import Output, PluginError
from .tarball import Tarball
from .uploadorigin import UPLOAD_ORIGINS_NAME, UPLOAD_ORIGINS_NAMESPACE, configured_origins, upload_refusal

TERMINAL_REASONS = {Reason.INVALID_SPEC.value, Reason.UNSUPPORTED_GPU.value}
NOT_READY_FAILURES = {Reason.BUILD_FAILED.value, Reason.JOB_FAILED.value, Reason.SUSPENDED.value}
WATCH_SECONDS = 240


class ObjectDeleted(PluginError):
    pass


class URLExpired(PluginError):
    pass


@dataclass(frozen=True)
class Target:
    """The object a plugin works on."""

    kind: Kind
    namespace: str
    name: str

    @property
    def resource(self) -> Resource:
        return RESOURCE_OF[self.kind]

    @property
    def ref(self) -> str:
        """kubectl's way of naming it: `model.substratus.ai/name`."""
        return f"{self.kind.singular}.{GROUP}/{self.name}"


def api_error_message(exc: ApiError, target: Target) -> str:
    """One line for an API error while working on `target`."""
    if isinstance(exc, Unavailable):
        return f"cannot reach the API server: {exc.message}"
    if isinstance(exc, NotFound) and "could not find the requested resource" in exc.message:
        return (
            f'the server doesn\'t have a resource type "{target.kind.plural}" (are the substratus.ai CRDs installed?)'
        )
    if isinstance(exc, (Forbidden, Unauthorized)):
        return exc.message or f"HTTP {exc.code}"
    return exc.message or f"HTTP {exc.code}"


async def apply(client: Client, target: Target, body: JSON, *, force: bool) -> JSON:
    """Server-side apply `body` as field manager `kubectl`."""
    try:
        return await client.apply(target.resource, body, field_manager=FIELD_MANAGER_KUBECTL, force=force)
    except Conflict as exc:
        raise PluginError(
            f"{exc.message}; pass --force-conflicts to take ownership of these fields from the other managers"
        ) from None
    except Invalid as exc:
        raise PluginError(exc.message) from None
    except ApiError as exc:
        raise PluginError(api_error_message(exc, target)) from None


def condition(obj: JSON, ctype: ConditionType, generation: int) -> JSON | None:
    """The condition `ctype`, if it was computed for `generation` or later."""
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype.value:
            return dict(c) if int(c.get("observedGeneration") or 0) >= generation else None
    return None


def generation_of(obj: JSON) -> int:
    return int(obj.get("metadata", {}).get("generation") or 0)


def _watch_backoff() -> Backoff:
    return Backoff(initial=2.0, maximum=10.0, jitter=0.0)  # 2, 4, 8, 10 s while the API server is unreachable


def _unavailable(exc: ApiError) -> bool:
    return isinstance(exc, Unavailable)


async def watch_object(client: Client, target: Target, first: JSON) -> AsyncIterator[JSON]:
    """`first`, then every later version of the object (see module docstring); DELETED -> ObjectDeleted."""
    yield first
    fetched: list[JSON] = []

    async def refetch() -> str:
        try:
            obj = await client.get(target.resource, target.name, target.namespace)
        except NotFound:
            raise ObjectDeleted(f"{target.ref} was deleted while waiting") from None
        fetched.append(obj)
        return str(obj["metadata"].get("resourceVersion") or "")

    loop = WatchLoop(
        client,
        target.resource,
        target.namespace,
        resource_version=first["metadata"].get("resourceVersion"),
        relist=refetch,
        field_selector=f"metadata.name={target.name}",
        timeout_seconds=lambda: WATCH_SECONDS,
        backoff=_watch_backoff(),
        retryable=_unavailable,
        empty_pause=1.0,
    )
    try:
        async with contextlib.aclosing(loop.events()) as events:
            async for event in events:
                if event.type == RELISTED:
                    yield fetched.pop()
                elif event.type in ("ADDED", "MODIFIED"):
                    yield event.object
                elif event.type == "DELETED":
                    raise ObjectDeleted(f"{target.ref} was deleted while waiting")
    except ApiError as exc:
        raise PluginError(f"watching {target.ref}: {api_error_message(exc, target)}") from None


async def put_tarball(url: str, tarball: Tarball, out: Output) -> None:
    """PUT the tarball to a signed URL (see module docstring); URLExpired on a 403 that says so."""
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-MD5": base64.b64encode(bytes.fromhex(tarball.md5_hex)).decode(),
        "Content-Length": str(tarball.size),
    }
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    with out.progress("uploading", tarball.size) as advance:

        async def body() -> AsyncIterator[bytes]:
            with tarball.path.open("rb") as f:
                while chunk := await asyncio.to_thread(f.read, 1 << 20):
                    advance(len(chunk))
                    yield chunk

        try:
            async with (
                aiohttp.ClientSession(trust_env=True) as session,
                session.put(url, data=body(), headers=headers, timeout=timeout) as resp,
            ):
                text = (await resp.read()).decode(errors="replace").strip()
                status, reason = resp.status, resp.reason or ""
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PluginError(f"upload failed: {redact(f'{type(exc).__name__}: {exc}')}") from None
    if status == 200:
        return
    if status == 403 and "expired" in text.lower():
        raise URLExpired("the signed upload URL expired")
    detail = redact(" ".join(text.split())[:300])
    raise PluginError(f"upload failed: HTTP {status} {reason}" + (f": {detail}" if detail else ""))


Reapply = Callable[[str], Awaitable[JSON]]


@dataclass
class Waiter:
    """Drives one object to Built (when `tarball` is set) and, with `want_ready`, to Ready."""

    client: Client
    target: Target
    out: Output
    tarball: Tarball | None = None
    want_ready: bool = False
    reapply: Reapply | None = None  # re-apply with a new requestID (after an expired URL)
    request_id: str = ""
    generation: int = 0
    last: JSON = field(default_factory=dict)
    uploaded: set[str] = field(default_factory=set)
    renewed: bool = False
    skipped: bool = False
    built: bool = False

    async def run(self, applied: JSON) -> JSON:
        self.generation = generation_of(applied)
        upload = ((applied.get("spec") or {}).get("build") or {}).get("upload") or {}
        self.request_id = self.request_id or str(upload.get("requestID") or "")
        async for obj in watch_object(self.client, self.target, applied):
            self.last = obj
            if await self.step(obj):
                return obj
        raise AssertionError("unreachable")  # pragma: no cover - the watch only ends by raising

    async def step(self, obj: JSON) -> bool:
        """Handle one version of the object; True when the wait is over."""
        if self.tarball is not None and await self._upload(obj):
            return False
        ready = condition(obj, ConditionType.READY, self.generation)
        if ready and ready.get("status") == "False" and ready.get("reason") in TERMINAL_REASONS:
            raise PluginError(f"{self.target.ref}: {ready['reason']}: {ready.get('message', '')}")
        if self.tarball is not None:
            built = condition(obj, ConditionType.BUILT, self.generation)
            if built and built.get("status") == "False" and built.get("reason") == Reason.BUILD_FAILED.value:
                raise PluginError(f"{self.target.ref}: build failed: {built.get('message', '')}")
            if not (built and built.get("status") == "True"):
                return False
            if not self.built:
                self.built = True
                self.out.detail(f"{self.target.ref}: built ({built.get('message', '')})")
        if not self.want_ready:
            return True
        if ready and ready.get("status") == "True":
            return True
        if ready and ready.get("reason") in NOT_READY_FAILURES:
            raise PluginError(f"{self.target.ref} will not become Ready: {ready['reason']}: {ready.get('message', '')}")
        return False

    async def _upload(self, obj: JSON) -> bool:
        """Answer the handshake; True when the object was re-applied (wait for its next version)."""
        assert self.tarball is not None
        up = (obj.get("status") or {}).get("buildUpload") or {}
        if up.get("requestID") == self.request_id and up.get("signedURL") and self.request_id not in self.uploaded:
            self.uploaded.add(self.request_id)
            refusal = upload_refusal(str(up["signedURL"]), await self.upload_origins())
            if refusal is not None:
                raise PluginError(refusal)
            self.out.detail(f"uploading the build context ({self.tarball.size} bytes, md5 {self.tarball.md5_hex})")
            try:
                await put_tarball(str(up["signedURL"]), self.tarball, self.out)
            except URLExpired:
                if self.renewed or self.reapply is None:
                    raise PluginError(
                        "the signed upload URL expired again; check the clocks of this machine "
                        "and the cluster, then try again"
                    ) from None
                self.renewed = True
                self.out.detail("the signed upload URL expired; asking for a new one")
                self.request_id = str(uuid.uuid4())
                applied = await self.reapply(self.request_id)
                self.generation = generation_of(applied)
                return True
            self.out.info(f"{self.target.ref}: build context uploaded")
        elif up.get("storedMD5Checksum") == self.tarball.md5_hex and not self.skipped and not self.uploaded:
            self.skipped = True
            self.out.info(f"{self.target.ref}: build context already uploaded (md5 {self.tarball.md5_hex}), skipping")
        return False

    async def upload_origins(self) -> set[str]:
        """The upload origins this cluster publishes, and the user's (plugins/uploadorigin.py)."""
        try:
            published = await self.client.get(CONFIGMAPS, UPLOAD_ORIGINS_NAME, UPLOAD_ORIGINS_NAMESPACE)
        except (NotFound, Forbidden):
            published = None  # none published, or not readable by this user: only the cloud hosts and the env
        except ApiError as exc:
            raise PluginError(f"reading {UPLOAD_ORIGINS_NAMESPACE}/{UPLOAD_ORIGINS_NAME}: {exc.message}") from None
        return configured_origins(published, os.environ)

    def describe(self) -> str:
        """The last state seen, for a timeout message."""
        conds = (self.last.get("status") or {}).get("conditions") or ()
        parts = [f"{c.get('type')}={c.get('status')} {c.get('reason', '')}".strip() for c in conds]
        return "; ".join(parts) or "no status yet (is the controller running?)"


def pod_phase_line(pod: JSON) -> str:
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    line = f"pod/{name}: {phase}"
    if phase == "Failed":
        for cs in status.get("containerStatuses") or ():
            term = (cs.get("state") or {}).get("terminated") or {}
            if term:
                why = term.get("message") or term.get("reason") or ""
                line += f" ({cs.get('name')}: exit code {term.get('exitCode')}{', ' + why if why else ''})"
                break
    return line


async def report_build_pods(client: Client, target: Target, out: Output) -> None:
    """Print the phase changes of the target's build pods until cancelled (errors end it quietly)."""
    selector = f"{kind_label(target.kind)}={target.name},{LABEL_ROLE}={ROLE_BUILD}"
    phases: dict[str, str] = {}

    async def relist() -> str:
        items, rv = await client.list_all(PODS, target.namespace, label_selector=selector)
        for pod in items:
            phases.setdefault(pod["metadata"]["name"], (pod.get("status") or {}).get("phase") or "Pending")
        return rv

    loop = WatchLoop(
        client,
        PODS,
        target.namespace,
        relist=relist,
        label_selector=selector,
        timeout_seconds=lambda: WATCH_SECONDS,
        backoff=_watch_backoff(),
        retryable=_unavailable,
        empty_pause=1.0,
    )
    try:
        async with contextlib.aclosing(loop.events()) as events:
            async for event in events:
                if event.type not in ("ADDED", "MODIFIED"):
                    continue
                pod = event.object
                name = pod["metadata"]["name"]
                phase = (pod.get("status") or {}).get("phase") or "Pending"
                if phases.get(name) != phase:
                    phases[name] = phase
                    out.info(pod_phase_line(pod))
    except ApiError as exc:
        out.detail(f"not reporting build pods: {api_error_message(exc, target)}")


@contextlib.asynccontextmanager
async def build_pod_reporter(client: Client, target: Target, out: Output, enabled: bool = True) -> AsyncIterator[None]:
    """Run `report_build_pods` in the background for the duration of the block."""
    task = asyncio.create_task(report_build_pods(client, target, out)) if enabled else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
