"""The API client's HTTP transport: one aiohttp session pool for requests and one for watches, credentials
on every request (a 401 reloads the configuration once and retries), a timeout on every call, errors mapped
onto runtime/errors.py, and the rest_client metrics.

Invariants: requests reuse keep-alive connections; every watch has a connection of its own that is never
reused (a stream abandoned as frozen cannot hand its dead socket to a later request).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from .credentials import Configuration, auth_headers, ssl_context
from .errors import Unavailable, error_for
from .metrics import RuntimeMetrics


def decode_body(raw: bytes) -> Any:
    """JSON when the body is JSON, else the text (e.g. `ok` from /readyz), None when empty."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


class Transport:
    """HTTP to one API server: pooled sessions, credentials on every request, the 401 reload, metrics."""

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

    @property
    def host(self) -> str:
        return str(self._cfg.host)

    def _get_session(self, *, watch: bool = False) -> aiohttp.ClientSession:
        """Requests share a pool of keep-alive connections; each watch gets a connection of its own that is
        never reused, so a stream abandoned as frozen cannot hand its dead socket to a later request."""
        session = self._watch_session if watch else self._session
        if session is None or session.closed:
            if watch:
                connector = aiohttp.TCPConnector(ssl=ssl_context(self._cfg), limit=0, force_close=True)
            else:
                connector = aiohttp.TCPConnector(ssl=ssl_context(self._cfg), limit=self._max_connections)
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

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", **await auth_headers(self._cfg)}
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
                self._cfg = await self._reloaded(method, path)
                continue
            return resp
        raise AssertionError("unreachable")

    async def _reloaded(self, method: str, path: str) -> Configuration:
        """The configuration loaded again (exec credential plugins re-run, rotated tokens re-read), within
        the client's timeout: a hanging credential plugin is an Unavailable, never a hang."""
        assert self._reload is not None
        try:
            return await asyncio.wait_for(self._reload(), self.timeout)
        except TimeoutError:
            raise Unavailable(
                f"{method} {path}: reloading the credentials took over {self.timeout:g}s", method=method, path=path
            ) from None

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
        payload = decode_body(raw)
        if resp.status >= 400:
            status = payload if isinstance(payload, dict) else {"message": raw.decode(errors="replace")[:500]}
            raise error_for(resp.status, status, method=method, path=path)
        return payload
