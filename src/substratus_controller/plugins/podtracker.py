"""Following a Notebook's pod across replacements, for the children that talk to it (port-forward, sync).

`kubectl port-forward` keeps running when its pod goes away: kubectl v1.20 (Debian 12's) holds on to the
dead stream and never exits, so a restart driven by the child's exit never comes. The plugin therefore
follows the pod itself: `PodTracker` reads it through the API once a second and knows which pod (by uid)
is the current one and when it is Ready; `follow_pod` runs a child for each Ready pod and stops it as
soon as that pod is deleted or replaced, then starts it again for the next one. The same holds with a
current kubectl (which exits on its own): one mechanism for both.

Invariants:
- A child is started only against a Ready pod and is stopped when that pod (its uid) is gone or has a
  deletionTimestamp; a replacement is not a failure of the child (no retry budget spent).
- The tracker never raises for API trouble: it reports once and keeps polling (the children keep running
  meanwhile); `stop` ends everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import ApiError, NotFound
from substratus_controller.runtime.resources import PODS
from substratus_controller.status.pods import pod_ready

from .kubectl import sleep_or_stop

POLL_SECONDS = 1.0


class PodTracker:
    """Which pod `name` in `namespace` is current and Ready (see module docstring)."""

    def __init__(
        self, client: Client, namespace: str, name: str, *, report: Callable[[str], None], poll: float = POLL_SECONDS
    ) -> None:
        self.client, self.namespace, self.name, self.report, self.poll = client, namespace, name, report, poll
        self.ready_pod: dict[str, object] | None = None  # the current Ready pod as last read
        self.started_at: float | None = None  # the current Ready pod's status.startTime (epoch seconds)
        self._ready = asyncio.Event()
        self._gone: dict[str, asyncio.Event] = {}
        self._troubled = False

    @property
    def ready_uid(self) -> str | None:
        """The uid of the current Ready pod, or None."""
        meta = self.ready_pod.get("metadata") if self.ready_pod is not None else None
        return str(meta["uid"]) if isinstance(meta, dict) else None

    def gone(self, uid: str) -> asyncio.Event:
        """Set once the pod with this uid is deleted, being deleted, or replaced."""
        return self._gone.setdefault(uid, asyncio.Event())

    async def wait_ready(self, stop: asyncio.Event) -> str | None:
        """The uid of the current pod once it is Ready; None when `stop` is set first."""
        while not stop.is_set():
            if self.ready_uid is not None:
                return self.ready_uid
            waiter = asyncio.create_task(self._ready.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
        return None

    def observe(self, pod: dict[str, object] | None) -> None:
        """Take one observation of the pod (None: not found)."""
        meta = pod.get("metadata") if pod is not None else None
        uid = str(meta.get("uid")) if isinstance(meta, dict) and meta.get("uid") else None
        deleting = isinstance(meta, dict) and bool(meta.get("deletionTimestamp"))
        for known, event in self._gone.items():
            if known != uid or deleting:
                event.set()
        if uid is not None and not deleting and pod is not None and pod_ready(pod):
            self.ready_pod = pod
            self.started_at = _epoch(pod)
            self._ready.set()
        elif uid is None or deleting or uid != self.ready_uid:
            self.ready_pod = None
            self._ready.clear()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                pod: dict[str, object] | None = await self.client.get(PODS, self.name, self.namespace)
                self._troubled = False
            except NotFound:
                pod = None
            except ApiError as exc:
                if not self._troubled:
                    self.report(f"cannot read pod/{self.name} ({exc}); retrying")
                    self._troubled = True
                if await sleep_or_stop(self.poll, stop):
                    return
                continue
            self.observe(pod)
            if await sleep_or_stop(self.poll, stop):
                return


def _epoch(pod: dict[str, object]) -> float | None:
    status = pod.get("status")
    started = status.get("startTime") if isinstance(status, dict) else None
    try:
        return datetime.fromisoformat(str(started).replace("Z", "+00:00")).timestamp() if started else None
    except ValueError:
        return None


@contextlib.asynccontextmanager
async def either(*events: asyncio.Event) -> AsyncIterator[asyncio.Event]:
    """An event set as soon as any of `events` is."""
    out = asyncio.Event()

    async def relay(event: asyncio.Event) -> None:
        await event.wait()
        out.set()

    tasks = [asyncio.create_task(relay(e)) for e in events]
    try:
        yield out
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def follow_pod(tracker: PodTracker, stop: asyncio.Event, run: Callable[[asyncio.Event], Awaitable[None]], *,
                     on_replaced: Callable[[], None]) -> None:  # fmt: skip
    """`run(child_stop)` for each Ready incarnation of the pod, until `stop` (see module docstring).

    `run` must return once `child_stop` is set; a PluginError from it (a child that keeps failing against a
    live pod) ends the session."""
    while not stop.is_set():
        uid = await tracker.wait_ready(stop)
        if uid is None:
            return
        async with either(stop, tracker.gone(uid)) as child_stop:
            await run(child_stop)
        if not stop.is_set():
            on_replaced()
