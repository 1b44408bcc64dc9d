"""Secure metrics without an API server: the bearer header, the decision cache on a fake clock, the decisions
(from scripted TokenReview/SubjectAccessReview answers), the self-signed certificate, and HttpServers refusing
to share an address between secure metrics and plain probes / serving HTTPS with a stub authorizer."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import pytest
import structlog
from cryptography import x509
from kubernetes_asyncio.client import Configuration
from prometheus_client import CollectorRegistry, Counter

from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.clock import FakeClock
from substratus_controller.runtime.errors import Forbidden, Unavailable
from substratus_controller.runtime.health import HttpServers, MetricsSecurity, Probes
from substratus_controller.runtime.metricsauth import (
    Decision,
    DecisionCache,
    MetricsAuthorizer,
    bearer_token,
    one_line,
    self_signed_cert,
    serving_context,
    token_key,
)

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
USER = {"username": "system:serviceaccount:monitoring:prometheus", "uid": "u-1", "groups": ["system:serviceaccounts"]}


# ------------------------------------------------------------------------------------------------- header
@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc ", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer a b", None),
        ("abc", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_one_line_flattens_redacts_and_truncates() -> None:
    assert one_line("a\nb\r\n  c") == "a b c"
    assert TOKEN not in one_line(f"failed for Bearer {TOKEN}")
    assert len(one_line("x" * 1000)) == 200


# ------------------------------------------------------------------------------------------------- cache
def test_cache_expires_after_ttl_and_keys_by_sha256() -> None:
    clock = FakeClock()
    cache = DecisionCache(ttl=10, clock=clock)
    cache.put(TOKEN, Decision(200, "OK"))
    assert TOKEN not in repr(cache._entries)
    assert list(cache._entries) == [token_key(TOKEN)]
    clock.step(9.9)
    assert cache.get(TOKEN) == Decision(200, "OK")
    assert cache.get("other") is None
    clock.step(0.1)
    assert cache.get(TOKEN) is None
    assert len(cache) == 0


def test_cache_is_bounded_and_evicts_the_oldest() -> None:
    cache = DecisionCache(ttl=10, max_entries=3, clock=FakeClock())
    for i in range(5):
        cache.put(f"t{i}", Decision(401, str(i)))
    assert len(cache) == 3
    assert [cache.get(f"t{i}") for i in range(2)] == [None, None]
    assert [d.reason for i in range(2, 5) if (d := cache.get(f"t{i}"))] == ["2", "3", "4"]


def test_cache_with_zero_ttl_keeps_nothing() -> None:
    cache = DecisionCache(ttl=0, clock=FakeClock())
    cache.put(TOKEN, Decision(200, "OK"))
    assert cache.get(TOKEN) is None


# ------------------------------------------------------------------------------------------------- decisions
class Scripted:
    """Answers for client.create: the TokenReview and SubjectAccessReview results (or exceptions), recorded."""

    def __init__(self, token_status: Any, access_status: Any = None) -> None:
        self.token_status = token_status
        self.access_status = access_status
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, res: Any, body: dict[str, Any], namespace: str | None = None, **_: Any) -> Any:
        self.calls.append((res.plural, body))
        if self.gate is not None:
            await self.gate.wait()
        answer = self.token_status if res == k8s.TOKENREVIEWS else self.access_status
        if isinstance(answer, BaseException):
            raise answer
        return {**body, "status": answer}


def authorizer(script: Scripted, clock: FakeClock | None = None) -> MetricsAuthorizer:
    cfg = Configuration()
    cfg.host = "https://127.0.0.1:1"
    client = Client(cfg)
    client.create = script  # type: ignore[method-assign]
    return MetricsAuthorizer(client, clock=clock or FakeClock())


async def test_no_header_is_401_without_a_review() -> None:
    script = Scripted({"authenticated": True, "user": USER}, {"allowed": True})
    auth = authorizer(script)
    for header in (None, "", "Basic x", "Bearer"):
        decision = await auth.authorize(header)
        assert decision.status == 401
    assert script.calls == []


async def test_an_unauthenticated_token_is_401_and_cached() -> None:
    script = Scripted({"authenticated": False, "error": "invalid bearer token"})
    auth = authorizer(script)
    assert (await auth.authorize("Bearer garbage")).status == 401
    assert (await auth.authorize("Bearer garbage")).status == 401
    assert [c[0] for c in script.calls] == ["tokenreviews"]  # no SAR for an unknown user; second one cached
    assert script.calls[0][1]["spec"] == {"token": "garbage"}


async def test_a_user_not_allowed_is_403_with_the_reviewed_attributes() -> None:
    script = Scripted({"authenticated": True, "user": USER}, {"allowed": False, "reason": "no RBAC policy matched"})
    auth = authorizer(script)
    decision = await auth.authorize(f"Bearer {TOKEN}")
    assert decision.status == 403
    assert decision.reason == (
        'Forbidden: user "system:serviceaccount:monitoring:prometheus" cannot get path "/metrics": '
        "no RBAC policy matched"
    )
    sar = script.calls[1][1]
    assert sar["apiVersion"] == "authorization.k8s.io/v1"
    assert sar["spec"] == {
        "user": USER["username"],
        "uid": "u-1",
        "groups": ["system:serviceaccounts"],
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
    }


async def test_denied_wins_over_allowed() -> None:
    auth = authorizer(Scripted({"authenticated": True, "user": USER}, {"allowed": True, "denied": True}))
    assert (await auth.authorize(f"Bearer {TOKEN}")).status == 403


async def test_allowed_is_200_cached_for_the_ttl_then_reviewed_again() -> None:
    clock = FakeClock()
    script = Scripted({"authenticated": True, "user": USER}, {"allowed": True})
    auth = authorizer(script, clock)
    assert await auth.authorize(f"Bearer {TOKEN}") == Decision(200, "OK", user=USER["username"])
    clock.step(9)
    assert (await auth.authorize(f"bearer {TOKEN}")).allowed
    assert auth.reviews == 1
    assert len(script.calls) == 2
    clock.step(1)
    assert (await auth.authorize(f"Bearer {TOKEN}")).allowed
    assert auth.reviews == 2
    assert len(script.calls) == 4


@pytest.mark.parametrize(
    ("token_status", "access_status", "expected"),
    [
        (Unavailable("POST /apis/...: ClientConnectorError: refused"), None,
         "Service Unavailable: TokenReview failed (no answer): POST /apis/...: ClientConnectorError: refused"),
        ({"authenticated": True, "user": USER}, Forbidden("subjectaccessreviews is forbidden:\nUser cannot"),
         "Service Unavailable: SubjectAccessReview failed (HTTP 403): subjectaccessreviews is forbidden: User cannot"),
        ({"authenticated": True, "user": USER}, TypeError("bad answer"),
         "Service Unavailable: authorization failed (TypeError)"),
    ],
)  # fmt: skip
async def test_errors_are_503_one_line_not_cached_and_never_show_the_token(
    token_status: Any, access_status: Any, expected: str
) -> None:
    script = Scripted(token_status, access_status)
    auth = authorizer(script)
    with structlog.testing.capture_logs() as logs:
        first = await auth.authorize(f"Bearer {TOKEN}")
        second = await auth.authorize(f"Bearer {TOKEN}")
    assert first == second == Decision(503, expected)
    assert "\n" not in first.reason
    assert auth.reviews == 2  # errors are not cached
    assert logs
    assert TOKEN not in repr(logs)


async def test_concurrent_requests_with_one_token_share_one_review() -> None:
    script = Scripted({"authenticated": True, "user": USER}, {"allowed": True})
    script.gate = asyncio.Event()
    auth = authorizer(script)
    waiting = [asyncio.create_task(auth.authorize(f"Bearer {TOKEN}")) for _ in range(5)]
    await asyncio.sleep(0.01)
    script.gate.set()
    decisions = await asyncio.gather(*waiting)
    assert {d.status for d in decisions} == {200}
    assert auth.reviews == 1


# ------------------------------------------------------------------------------------------------- TLS
def test_self_signed_cert_names_loopback_and_serves() -> None:
    cert_pem, key_pem = self_signed_cert()
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert b"PRIVATE KEY" in key_pem
    assert serving_context().cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_serving_context_from_a_directory(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"has no tls\.crt"):
        serving_context(tmp_path)
    cert_pem, key_pem = self_signed_cert()
    (tmp_path / "tls.crt").write_bytes(cert_pem)
    (tmp_path / "tls.key").write_bytes(key_pem)
    assert serving_context(str(tmp_path)).cert_pem == cert_pem


# ------------------------------------------------------------------------------------------------- HttpServers
class Stub:
    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.headers: list[str | None] = []

    async def authorize(self, authorization: str | None) -> Decision:
        self.headers.append(authorization)
        return self.decision


def servers(security: MetricsSecurity | None, metrics: str, probes: str) -> HttpServers:
    registry = CollectorRegistry()
    Counter("stub_scrapes", "a metric", registry=registry).inc()
    return HttpServers(
        registry=registry, probes=Probes(health={"ok": lambda: True}), metrics_address=metrics,
        probe_address=probes, metrics_security=security,
    )  # fmt: skip


@pytest.mark.parametrize("address", [":8080", "127.0.0.1:0"])
def test_secure_metrics_refuse_an_address_shared_with_the_probes(address: str) -> None:
    security = MetricsSecurity(Stub(Decision(200, "OK")), serving_context().context)
    with pytest.raises(ValueError, match="secure metrics need an address of their own"):
        servers(security, address, address)
    servers(None, address, address)  # without security one server serves both, as before
    servers(security, address, "0")


@pytest.mark.parametrize(
    ("decision", "status", "body"),
    [
        (Decision(200, "OK"), 200, "stub_scrapes_total 1.0"),
        (Decision(401, "Unauthorized: no"), 401, "Unauthorized: no\n"),
        (Decision(403, "Forbidden: no"), 403, "Forbidden: no\n"),
        (Decision(503, "Service Unavailable: down"), 503, "Service Unavailable: down\n"),
    ],
)
async def test_metrics_over_https_answer_the_decision_probes_stay_plain(
    decision: Decision, status: int, body: str
) -> None:
    cert = serving_context()
    stub = Stub(decision)
    s = servers(MetricsSecurity(stub, cert.context), "127.0.0.1:0", "localhost:0")
    await s.start()
    try:
        trust = ssl.create_default_context(cadata=cert.cert_pem.decode())
        host, port = s.bound["/metrics"]
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"https://{host}:{port}/metrics", ssl=trust, headers={"Authorization": "Bearer t"}
            ) as resp:
                text = await resp.text()
                assert resp.status == status
                assert body in text
                assert ("WWW-Authenticate" in resp.headers) == (status == 401)
            phost, pport = s.bound["/healthz"]
            async with session.get(f"http://{phost}:{pport}/healthz") as resp:
                assert (resp.status, await resp.text()) == (200, "ok")
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the metrics port is no answer
                async with session.get(f"http://{host}:{port}/metrics") as resp:
                    await resp.read()
        assert stub.headers[0] == "Bearer t"
    finally:
        await s.stop()
