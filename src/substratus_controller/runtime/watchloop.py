"""The one watch loop: watch a resource and keep watching, resuming where the last stream ended (the
reflector's loop in client-go), for the informer, leader election and the kubectl plugins' waits.

Contract:
- `events()` yields ADDED, MODIFIED and DELETED events, and a RELISTED pseudo-event after each `relist`,
  until the consumer stops iterating or an error that is not retryable is raised.
- The resourceVersion of every event, BOOKMARK included, is the one the next WATCH resumes from
  (`resource_version`); BOOKMARKs are not yielded.
- "Too old" (an ERROR event with code 410, or a 410 answer) calls `relist()` for a fresh resourceVersion
  and resumes from it; without `relist`, the next watch starts from "now" (no resourceVersion).
- A stream silent for `idle_timeout` (WatchIdle: a frozen connection, or a quiet resource) is re-watched
  at once from the same resourceVersion.
- Other API errors (an ERROR event's Status included) are retried after `backoff.next()` on the `clock`
  when `retryable(error)` says so, else raised. Every delivered event resets the backoff.
- A stream that ends without an event waits `empty_pause` before the next watch (a proxy that closes
  watches at once must not become a busy loop).
- `on_restart(reason, error)` counts the restarts: "watch" (every WATCH request; no error), "gone", "idle",
  "error" (with the error that caused them).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from .backoff import Backoff
from .client import Client
from .clock import Clock, RealClock
from .errors import ApiError, Gone, WatchIdle, error_for
from .resource import Resource
from .watchstream import WatchEvent

RELISTED = "RELISTED"  # pseudo-event type: `relist()` ran; `object` holds only metadata.resourceVersion


def _always(_: ApiError) -> bool:
    return True


def _ignore(_: str, __: ApiError | None) -> None:
    return None


class WatchLoop:
    """Watches one resource (a namespace, selectors) across stream ends, expiries and failures."""

    def __init__(
        self,
        client: Client,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        relist: Callable[[], Awaitable[str]] | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: Callable[[], int] = lambda: 300,
        idle_timeout: float | None = None,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        retryable: Callable[[ApiError], bool] = _always,
        on_error: Callable[[ApiError, float], None] | None = None,
        on_restart: Callable[[str, ApiError | None], None] = _ignore,
        empty_pause: float = 0.0,
    ) -> None:
        self.client, self.resource, self.namespace = client, resource, namespace
        self.resource_version = resource_version
        self.relist = relist
        self.label_selector, self.field_selector = label_selector, field_selector
        self.allow_bookmarks = allow_bookmarks
        self.timeout_seconds = timeout_seconds
        self.idle_timeout = idle_timeout
        self.backoff = backoff or Backoff()
        self.clock: Clock = clock or RealClock()
        self.retryable = retryable
        self.on_error = on_error
        self.on_restart = on_restart
        self.empty_pause = empty_pause
        self.need_list = relist is not None and not resource_version

    async def events(self) -> AsyncGenerator[WatchEvent, None]:
        """ADDED/MODIFIED/DELETED (and RELISTED) events, forever (see the module docstring)."""
        while True:
            try:
                if self.need_list and self.relist is not None:
                    self.resource_version = await self.relist()
                    self.need_list = False
                    yield WatchEvent(RELISTED, {"metadata": {"resourceVersion": self.resource_version}})
                delivered = 0
                async for event in self._stream():
                    delivered += 1
                    yield event
                if not delivered and self.empty_pause > 0:
                    await self.clock.sleep(self.empty_pause)
            except Gone as exc:
                self.on_restart("gone", exc)
                self._expired()
            except WatchIdle as exc:
                self.on_restart("idle", exc)
            except ApiError as exc:
                if not self.retryable(exc):
                    raise
                delay = self.backoff.next()
                self.on_restart("error", exc)
                if self.on_error is not None:
                    self.on_error(exc, delay)
                await self.clock.sleep(delay)

    def _expired(self) -> None:
        if self.relist is not None:
            self.need_list = True
        else:
            self.resource_version = None

    async def _stream(self) -> AsyncIterator[WatchEvent]:
        """One WATCH request's events (BOOKMARKs consumed); ERROR events raised as their API errors."""
        self.on_restart("watch", None)
        stream = self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self.resource_version,
            timeout_seconds=self.timeout_seconds(),
            allow_bookmarks=self.allow_bookmarks,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            idle_timeout=self.idle_timeout,
        )
        async for event in stream:
            raw = event.object
            if event.type == "ERROR":
                code = int(raw.get("code") or 0)
                raise error_for(code, raw, method="WATCH", path=self.resource.path(self.namespace))
            rv = (raw.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = str(rv)
            if event.type == "BOOKMARK":
                continue
            self.backoff.reset()
            yield event
