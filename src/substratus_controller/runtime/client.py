"""Kubernetes API client: raw JSON over aiohttp, configured by kubernetes-asyncio, decoded with orjson.

Contract:
- Configuration comes from kubernetes-asyncio's loaders (kubeconfig with exec/auth plugins, or the in-cluster
  service account with token-file refresh), imported without its generated models (kubeconfig.py);
  requests are plain aiohttp calls with `Accept: application/json` whose bodies are decoded with orjson into
  dicts. No generated model classes anywhere.
- Every call has a timeout (`timeout=` per call, else the client default). Watches have no total timeout but
  a read-idle timeout: a stream silent for longer raises `WatchIdle` (the informer's watchdog).
- HTTP errors map onto a small exception tree (`NotFound`, `Conflict`/`AlreadyExists`, `Invalid`, `Gone`,
  `Forbidden`/`Unauthorized`, `ServerError` incl. `Unavailable` for connection failures and timeouts).
- A 401 reloads the configuration once (re-running exec plugins, re-reading rotated tokens) and retries.
- Metrics: rest_client_requests_total{code,method,host} and rest_client_request_duration_seconds{verb,host}.

Rooms: errors.py (the exception tree), credentials.py (configuration, auth header, TLS), transport.py
(sessions, send, decode, metrics), watchstream.py (watch body -> events); this module holds the verbs.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import orjson

from substratus_controller.jsontypes import JSON

from .credentials import load_configuration
from .errors import ApiError, Unavailable, WatchIdle, error_for
from .metrics import RuntimeMetrics
from .resource import Resource
from .transport import Transport
from .watchstream import WatchEvent, decode_events

APPLY_PATCH: Final = "application/apply-patch+yaml"
MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"


class Client(Transport):
    """An asyncio Kubernetes client speaking raw JSON. Create with `await Client.connect(...)`; `close()` it.

    All methods are coroutines except `watch`, an async generator. Bodies are plain dicts.
    """

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | os.PathLike[str] | None = None,
        *,
        context: str | None = None,
        metrics: RuntimeMetrics | None = None,
        timeout: float = 30.0,
    ) -> Client:
        try:  # an exec credential plugin may hang: the load is an outbound call like any other
            cfg = await asyncio.wait_for(load_configuration(kubeconfig, context=context), timeout)
        except TimeoutError:
            raise Unavailable(f"loading the kubeconfig credentials took over {timeout:g}s") from None
        return cls(
            cfg, metrics=metrics, timeout=timeout, reload=lambda: load_configuration(kubeconfig, context=context)
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------- verbs
    async def get(self, res: Resource, name: str, namespace: str | None = None, *, subresource: str | None = None,
                  timeout: float | None = None) -> JSON:  # fmt: skip
        return dict(await self.request("GET", res.path(namespace, name, subresource), timeout=timeout))

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,
    ) -> JSON:
        """One page of a LIST (the raw List object, with metadata.continue when there is more)."""
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return dict(await self.request("GET", res.path(namespace), params=params, timeout=timeout))

    async def list_all(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        timeout: float | None = None,
    ) -> tuple[builtins.list[JSON], str]:
        """All items of a LIST, paginated; returns (items, the list's resourceVersion)."""
        items: builtins.list[JSON] = []
        token: str | None = None
        while True:
            page = await self.list(
                res, namespace, label_selector=label_selector, field_selector=field_selector, limit=page_size,
                continue_=token, timeout=timeout,
            )  # fmt: skip
            items.extend(page.get("items") or [])
            meta = page.get("metadata", {})
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    async def create(self, res: Resource, body: JSON, namespace: str | None = None, *,
                     subresource: str | None = None, timeout: float | None = None) -> JSON:  # fmt: skip
        ns = namespace or body.get("metadata", {}).get("namespace")
        name = body.get("metadata", {}).get("name") if subresource else None
        return dict(await self.request("POST", res.path(ns, name, subresource), body=body, timeout=timeout))

    async def replace(
        self, res: Resource, body: JSON, *, subresource: str | None = None, timeout: float | None = None
    ) -> JSON:
        meta = body["metadata"]
        path = res.path(meta.get("namespace"), meta["name"], subresource)
        return dict(await self.request("PUT", path, body=body, timeout=timeout))

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = "Background",
        uid: str | None = None,
        resource_version: str | None = None,
        grace_period_seconds: int | None = None,
        timeout: float | None = None,
    ) -> JSON:
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        return dict(await self.request("DELETE", res.path(namespace, name), body=body, timeout=timeout) or {})

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        content_type: str = MERGE_PATCH,
        subresource: str | None = None,
        field_manager: str | None = None,
        timeout: float | None = None,
    ) -> JSON:
        params = {"fieldManager": field_manager} if field_manager else None
        path = res.path(namespace, name, subresource)
        return dict(
            await self.request("PATCH", path, params=params, body=patch, content_type=content_type, timeout=timeout)
        )

    async def apply(
        self,
        res: Resource,
        body: JSON,
        *,
        field_manager: str,
        force: bool = False,
        subresource: str | None = None,
        timeout: float | None = None,
    ) -> JSON:
        """Server-side apply `body` (a full object with apiVersion, kind, metadata.name[, namespace])."""
        meta = body["metadata"]
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        path = res.path(meta.get("namespace"), meta["name"], subresource)
        return dict(
            await self.request("PATCH", path, params=params, body=body, content_type=APPLY_PATCH, timeout=timeout)
        )

    async def apply_status(
        self, res: Resource, body: JSON, *, field_manager: str, force: bool = False, timeout: float | None = None
    ) -> JSON:
        return await self.apply(
            res, body, field_manager=field_manager, force=force, subresource="status", timeout=timeout
        )

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
        label_selector: str | None = None,
        field_selector: str | None = None,
        idle_timeout: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Stream watch events until the server ends the watch.

        Raises `WatchIdle` when nothing arrives for `idle_timeout` seconds, `Unavailable` when the
        connection breaks, and the mapped ApiError when the watch request itself fails. An expired
        resourceVersion arrives as an `ERROR` event (code 410), not as an exception.
        """
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        path = res.path(namespace)
        idle = idle_timeout if idle_timeout is not None else timeout_seconds + 60
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_connect=self.timeout, sock_read=idle)
        resp = await self._send("GET", path, params=params, body=None, content_type=None, timeout=timeout, watch=True)
        try:
            if resp.status >= 400:
                raw = await resp.read()
                status = orjson.loads(raw) if raw.startswith(b"{") else {"message": raw.decode(errors="replace")}
                raise error_for(resp.status, status, method="WATCH", path=path)
            try:
                async for event in decode_events(resp.content.iter_any()):
                    yield event
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise WatchIdle(f"watch {res}: no data for {idle:g}s", method="WATCH", path=path) from exc
            except aiohttp.ClientError as exc:
                raise Unavailable(f"watch {res}: {type(exc).__name__}: {exc}", method="WATCH", path=path) from exc
        finally:
            resp.release()

    async def wait_ready(self, *, timeout: float = 30.0) -> None:
        """Wait until /readyz answers (for tests and start-up)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self.request("GET", "/readyz", timeout=2)
                return
            except ApiError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
