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
"""

from __future__ import annotations

import asyncio
import builtins
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import orjson

from substratus_controller.jsontypes import JSON

from .kubeconfig import load_config_modules
from .metrics import RuntimeMetrics
from .resource import Resource

Configuration = Any  # kubernetes_asyncio.client.Configuration, imported lazily (see kubeconfig.py)

APPLY_PATCH: Final = "application/apply-patch+yaml"
MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"


# --------------------------------------------------------------------------------------------- errors
class ApiError(Exception):
    """An error answer from the API server (or no answer: `code` 0). `status` is the API Status, if any."""

    code: int = 0

    def __init__(self, message: str, *, code: int | None = None, status: JSON | None = None, method: str = "",
                 path: str = "") -> None:  # fmt: skip
        super().__init__(message)
        if code is not None:
            self.code = code
        self.status = status or {}
        self.method = method
        self.path = path

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadRequest(ApiError):
    code = 400


class Unauthorized(ApiError):
    code = 401


class Forbidden(ApiError):
    code = 403


class NotFound(ApiError):
    code = 404


class Conflict(ApiError):
    """409: a resourceVersion/uid precondition failed, or the object already exists (`AlreadyExists`)."""

    code = 409


class AlreadyExists(Conflict):
    pass


class Gone(ApiError):
    """410: the requested resourceVersion is too old (compacted). Relist."""

    code = 410


class Invalid(ApiError):
    """422: the object failed validation; `causes` lists the offending fields."""

    code = 422

    @property
    def causes(self) -> list[JSON]:
        return list(self.status.get("details", {}).get("causes", []))


class ServerError(ApiError):
    """5xx, 429, or no usable answer: retry with backoff."""

    code = 500


class TooManyRequests(ServerError):
    code = 429


class Unavailable(ServerError):
    """The server could not be reached or did not answer in time."""

    code = 0


class WatchIdle(Unavailable):
    """A watch stream delivered nothing for longer than its idle timeout (a frozen connection)."""


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_for(code: int, status: JSON, *, method: str = "", path: str = "") -> ApiError:
    """The exception for an HTTP error code and its API Status body."""
    cls = _BY_CODE.get(code, ServerError if code >= 500 else ApiError)
    if cls is Conflict and status.get("reason") == "AlreadyExists":
        cls = AlreadyExists
    message = str(status.get("message") or f"HTTP {code}")
    return cls(message, code=code, status=status, method=method, path=path)


def _decode(raw: bytes) -> Any:
    """JSON when the body is JSON, else the text (e.g. `ok` from /readyz), None when empty."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


# --------------------------------------------------------------------------------------------- config
async def load_configuration(kubeconfig: str | os.PathLike[str] | None = None, *, context: str | None = None) -> (
    Configuration
):  # fmt: skip
    """Resolve credentials: `kubeconfig` if given, else in-cluster, else $KUBECONFIG, else ~/.kube/config."""
    config = load_config_modules()
    load_kube_config, load_incluster_config = config.load_kube_config, config.load_incluster_config
    cfg = config.kube_config.Configuration()
    if kubeconfig:
        await load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=cfg,
                               persist_config=False)  # fmt: skip
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        load_incluster_config(client_configuration=cfg)
    else:
        path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
        await load_kube_config(config_file=path, context=context, client_configuration=cfg, persist_config=False)
    return cfg


def _ssl_context(cfg: Configuration) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --------------------------------------------------------------------------------------------- client
@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: `type` is ADDED, MODIFIED, DELETED, BOOKMARK or ERROR; `object` the raw dict."""

    type: str
    object: JSON


class Client:
    """An asyncio Kubernetes client speaking raw JSON. Create with `await Client.connect(...)`; `close()` it.

    All methods are coroutines except `watch`, an async generator. Bodies are plain dicts.
    """

    def __init__(
        self,
        cfg: Configuration,
        *,
        metrics: RuntimeMetrics | None = None,
        timeout: float = 30.0,
        reload: Callable[[], Awaitable[Configuration]] | None = None,
        max_connections: int = 100,
    ) -> None:
        self._cfg = cfg
        self.metrics = metrics or RuntimeMetrics()
        self.timeout = timeout
        self._reload = reload
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None
        self._host_label = urlsplit(cfg.host).netloc or cfg.host

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | os.PathLike[str] | None = None,
        *,
        context: str | None = None,
        metrics: RuntimeMetrics | None = None,
        timeout: float = 30.0,
    ) -> Client:
        cfg = await load_configuration(kubeconfig, context=context)
        return cls(
            cfg, metrics=metrics, timeout=timeout, reload=lambda: load_configuration(kubeconfig, context=context)
        )

    @property
    def host(self) -> str:
        return str(self._cfg.host)

    def _get_session(self, *, watch: bool = False) -> aiohttp.ClientSession:
        """Requests share a pool of keep-alive connections; each watch gets a connection of its own that is
        never reused, so a stream abandoned as frozen cannot hand its dead socket to a later request."""
        session = self._watch_session if watch else self._session
        if session is None or session.closed:
            if watch:
                connector = aiohttp.TCPConnector(ssl=_ssl_context(self._cfg), limit=0, force_close=True)
            else:
                connector = aiohttp.TCPConnector(ssl=_ssl_context(self._cfg), limit=self._max_connections)
            session = aiohttp.ClientSession(connector=connector, trust_env=False)
            if watch:
                self._watch_session = session
            else:
                self._session = session
        return session

    async def close(self) -> None:
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()
        self._session = self._watch_session = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = await self._cfg.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
        elif self._cfg.username:
            headers["Authorization"] = self._cfg.get_basic_auth_token()
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None,
        body: Any,
        content_type: str | None,
        timeout: aiohttp.ClientTimeout,
        watch: bool = False,
    ) -> aiohttp.ClientResponse:
        data = orjson.dumps(body) if body is not None else None
        for attempt in (1, 2):
            headers = await self._headers(content_type if data is not None else None)
            try:
                resp = await self._get_session(watch=watch).request(
                    method, self.host + path, params=params, data=data, headers=headers, timeout=timeout
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.metrics.rest_requests.labels("<error>", method, self._host_label).inc()
                raise Unavailable(f"{method} {path}: {type(exc).__name__}: {exc}", method=method, path=path) from exc
            self.metrics.rest_requests.labels(str(resp.status), method, self._host_label).inc()
            if resp.status == 401 and attempt == 1 and self._reload is not None:
                resp.release()
                self._cfg = await self._reload()
                continue
            return resp
        raise AssertionError("unreachable")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One request; returns the decoded JSON body (None when empty); raises ApiError subclasses."""
        started = time.perf_counter()
        client_timeout = aiohttp.ClientTimeout(total=timeout or self.timeout)
        resp = await self._send(
            method, path, params=params, body=body, content_type=content_type or "application/json",
            timeout=client_timeout,
        )  # fmt: skip
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"{method} {path}: reading the answer: {exc}", method=method, path=path) from exc
        finally:
            resp.release()
            self.metrics.rest_request_duration.labels(method, self._host_label).observe(time.perf_counter() - started)
        payload = _decode(raw)
        if resp.status >= 400:
            status = payload if isinstance(payload, dict) else {"message": raw.decode(errors="replace")[:500]}
            raise error_for(resp.status, status, method=method, path=path)
        return payload

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

    async def replace(self, res: Resource, body: JSON, *, subresource: str | None = None,
                      timeout: float | None = None) -> JSON:  # fmt: skip
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

    async def apply_status(self, res: Resource, body: JSON, *, field_manager: str, force: bool = False,
                           timeout: float | None = None) -> JSON:  # fmt: skip
        return await self.apply(res, body, field_manager=field_manager, force=force, subresource="status",
                                timeout=timeout)  # fmt: skip

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
            pending = b""  # an incomplete last line, carried into the next chunk
            try:
                async for chunk in resp.content.iter_any():
                    data = pending + chunk if pending else chunk
                    start = 0
                    while (newline := data.find(b"\n", start)) >= 0:
                        line = data[start:newline]
                        start = newline + 1
                        if line.strip():
                            event = orjson.loads(line)
                            yield WatchEvent(event["type"], event["object"])
                    pending = data[start:]
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
