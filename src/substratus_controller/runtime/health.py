"""HTTP endpoints of the manager: `/metrics` (Prometheus text format), `/healthz` and `/readyz`.

Contract:
- Addresses use controller-runtime's flag syntax: `:8080` (all interfaces), `127.0.0.1:8080`, or `0` to
  disable. Metrics and probes may share one address (one server) or use two.
- `/healthz` answers 200 while every named check returns true (the manager registers "tasks alive");
  `/readyz` likewise for readiness checks (caches synced, and with election: leading or standing by). A
  failing check answers 500 and names it. `?verbose` lists every check.
- Secure metrics (`metrics_security`): `/metrics` is served over HTTPS and every request is authenticated and
  authorized first (metricsauth.py): 401 without a valid bearer token, 403 when not allowed, 503 (one line)
  when the check itself fails. Probes stay plain HTTP and unauthenticated, so they need an address of their
  own: sharing one with secure metrics is a ValueError.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .metricsauth import Decision

Check = Callable[[], bool]


def parse_address(address: str | None) -> tuple[str | None, int] | None:
    """`:8080` -> (None, 8080); `127.0.0.1:8080` -> ("127.0.0.1", 8080); `0`, "" or None -> None (disabled)."""
    if address is None or address.strip() in ("", "0"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid bind address {address!r}: expected [host]:port, or 0 to disable")
    return (host.strip("[]") or None), int(port)


@dataclass
class Probes:
    """Named health and readiness checks."""

    health: dict[str, Check] = field(default_factory=dict)
    ready: dict[str, Check] = field(default_factory=dict)


class Authorizer(Protocol):
    async def authorize(self, authorization: str | None) -> Decision: ...


@dataclass(frozen=True)
class MetricsSecurity:
    """Secure metrics: who may read `/metrics` (`authorizer`, e.g. metricsauth.MetricsAuthorizer) and the TLS
    context the metrics server serves with."""

    authorizer: Authorizer
    ssl_context: ssl.SSLContext


def _probe(checks: dict[str, Check]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                results[name] = False
        failed = [n for n, ok in results.items() if not ok]
        if "verbose" in request.query:
            body = "".join(f"[{'+' if ok else '-'}]{n} {'ok' if ok else 'failed'}\n" for n, ok in results.items())
            body += "check passed\n" if not failed else f"check failed: {', '.join(failed)}\n"
        else:
            body = "ok" if not failed else f"failed: {', '.join(failed)}"
        return web.Response(status=500 if failed else 200, text=body)

    return handler


class HttpServers:
    """Serves metrics and probes on one or two addresses; `start()`/`stop()`."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        probes: Probes,
        metrics_address: str | None,
        probe_address: str | None,
        metrics_security: MetricsSecurity | None = None,
    ) -> None:
        self.registry = registry
        self.probes = probes
        self.security = metrics_security
        self._metrics_addr = parse_address(metrics_address)
        self._probe_addr = parse_address(probe_address)
        if metrics_security is not None and self._metrics_addr is not None and self._metrics_addr == self._probe_addr:
            raise ValueError(
                f"secure metrics need an address of their own: metrics and probes are both on {metrics_address!r},"
                " but /metrics is HTTPS with authentication while /healthz and /readyz stay plain HTTP;"
                " give the probes another address"
            )
        self._runners: list[web.AppRunner] = []
        self.bound: dict[str, tuple[str, int]] = {}

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        if self.security is not None:
            try:
                decision = await self.security.authorizer.authorize(request.headers.get("Authorization"))
            except Exception as exc:  # an authorizer bug: still a one-line answer, never a traceback
                decision = Decision(503, f"Service Unavailable: authorization failed ({type(exc).__name__})")
            if not decision.allowed:
                headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if decision.status == 401 else None
                return web.Response(status=decision.status, text=decision.reason + "\n", headers=headers)
        resp = web.Response(body=generate_latest(self.registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def start(self) -> None:
        sites: dict[tuple[str | None, int], web.Application] = {}
        if self._metrics_addr is not None:
            sites.setdefault(self._metrics_addr, web.Application()).router.add_get("/metrics", self._metrics)
        if self._probe_addr is not None:
            app = sites.setdefault(self._probe_addr, web.Application())
            app.router.add_get("/healthz", _probe(self.probes.health))
            app.router.add_get("/readyz", _probe(self.probes.ready))
        for (host, port), app in sites.items():
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            secure = self.security is not None and (host, port) == self._metrics_addr
            tls = self.security.ssl_context if self.security is not None and secure else None
            site = web.TCPSite(runner, host=host, port=port, ssl_context=tls)
            await site.start()
            self._runners.append(runner)
            server = site._server
            for sock in getattr(server, "sockets", None) or ():
                addr = sock.getsockname()
                for route in app.router.routes():
                    self.bound[route.resource.canonical if route.resource else ""] = (addr[0], addr[1])

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
