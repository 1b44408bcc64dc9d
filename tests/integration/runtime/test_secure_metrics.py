"""Secure metrics against the real API server: the manager serves /metrics over HTTPS (self-signed) and decides
each scrape with TokenReviews and SubjectAccessReviews made as the controller's own ServiceAccount, holding
exactly the RBAC of manifests/optional/metrics-auth. Scrapers are ServiceAccounts with tokens from the
TokenRequest API: one bound to the manifest's substratus-metrics-reader role, one not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.error
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
import yaml

from substratus_controller.runtime.client import Client
from substratus_controller.runtime.health import HttpServers, MetricsSecurity, Probes
from substratus_controller.runtime.manager import Manager, ManagerOptions
from substratus_controller.runtime.metricsauth import MetricsAuthorizer, serving_context
from substratus_controller.testing import ControlPlane
from substratus_controller.testing.controlplane import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
COMPONENT = ROOT / "manifests" / "optional" / "metrics-auth"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def manifest(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((COMPONENT / name).read_text()) if d]


@dataclass
class Identities:
    namespace: str
    controller: str  # token of the controller's ServiceAccount (bound to the manifest's metrics-auth role)
    bare: str  # token of a ServiceAccount with no role at all
    reader: str  # token of a scraper bound to the manifest's metrics-reader role
    stranger: str  # token of a scraper with no binding


def _token(cp: ControlPlane, ns: str, sa: str) -> str:
    cp.request(f"/api/v1/namespaces/{ns}/serviceaccounts", method="POST", body={"metadata": {"name": sa}})
    answer = cp.request(
        f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
        method="POST",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )
    return str(answer["status"]["token"])


@pytest.fixture
def identities(control_plane: ControlPlane, namespace: str) -> Iterator[Identities]:
    """The manifests' ClusterRoles (renamed per test: the plane is shared), bound to fresh ServiceAccounts."""
    cp, suffix = control_plane, uuid.uuid4().hex[:6]
    created: list[str] = []
    roles = {d["metadata"]["name"]: d for d in manifest("metrics-auth-role.yaml") + manifest("metrics-reader-role.yaml")
             if d["kind"] == "ClusterRole"}  # fmt: skip
    assert set(roles) == {"substratus-metrics-auth", "substratus-metrics-reader"}
    for name, role in roles.items():
        cp.request(f"{RBAC}/clusterroles", method="POST", body={**role, "metadata": {"name": f"{name}-{suffix}"}})
        created.append(f"{RBAC}/clusterroles/{name}-{suffix}")
    tokens = {sa: _token(cp, namespace, sa) for sa in ("controller", "bare", "reader", "stranger")}
    for sa, role in (("controller", "substratus-metrics-auth"), ("reader", "substratus-metrics-reader")):
        cp.request(f"{RBAC}/clusterrolebindings", method="POST", body={
            "metadata": {"name": f"{role}-{suffix}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{role}-{suffix}"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        })  # fmt: skip
        created.append(f"{RBAC}/clusterrolebindings/{role}-{suffix}")
    yield Identities(namespace=namespace, **tokens)
    for path in reversed(created):
        with contextlib.suppress(urllib.error.HTTPError):
            cp.request(path, method="DELETE")


async def sa_client(cp: ControlPlane, token: str, path: Path) -> Client:
    path.write_text(json.dumps(cp.kubeconfig_dict(token=token, user="sa")))
    return await Client.connect(path)


def served_cert_context(host: str, port: int) -> ssl.SSLContext:
    """Trust exactly the certificate the server presents (and check the host name against it)."""
    pem = ssl.get_server_certificate((host, port))
    return ssl.create_default_context(cadata=pem)


async def scrape(url: str, trust: ssl.SSLContext, token: str | None) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session, session.get(url, ssl=trust, headers=headers) as resp:
        return resp.status, await resp.text(), resp.headers


@pytest.fixture
async def manager(
    control_plane: ControlPlane, identities: Identities, tmp_path: Path
) -> AsyncIterator[tuple[Manager, str, ssl.SSLContext]]:
    """A manager with secure metrics, running as the controller's ServiceAccount; its metrics URL and trust."""
    client = await sa_client(control_plane, identities.controller, tmp_path / "controller.kubeconfig")
    options = ManagerOptions(
        metrics_address="127.0.0.1:0", probe_address=f"127.0.0.1:{free_port()}", metrics_secure=True
    )
    mgr = Manager(client, options)
    task = asyncio.create_task(mgr.run())
    try:
        for _ in range(100):
            if "/metrics" in mgr.servers.bound or task.done():
                break
            await asyncio.sleep(0.05)
        host, port = mgr.servers.bound["/metrics"]
        yield mgr, f"https://{host}:{port}/metrics", await asyncio.to_thread(served_cert_context, host, port)
    finally:
        mgr.stop()
        await asyncio.wait_for(task, 20)
        await client.close()


async def test_scrapes_are_authenticated_and_authorized(
    manager: tuple[Manager, str, ssl.SSLContext], identities: Identities
) -> None:
    mgr, url, trust = manager
    authorizer = mgr.servers.security.authorizer if mgr.servers.security else None
    assert isinstance(authorizer, MetricsAuthorizer)

    status, body, headers = await scrape(url, trust, None)
    assert status == 401, body
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert authorizer.reviews == 0  # no token: no review

    status, body, _ = await scrape(url, trust, "not-a-token")
    assert (status, body) == (401, "Unauthorized: the token is not valid\n")

    status, body, _ = await scrape(url, trust, identities.stranger)
    assert status == 403, body
    assert body == (
        f'Forbidden: user "system:serviceaccount:{identities.namespace}:stranger" cannot get path "/metrics"\n'
    )

    with structlog.testing.capture_logs() as logs:
        status, body, headers = await scrape(url, trust, identities.reader)
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain")
    assert "rest_client_requests_total" in body
    assert identities.reader not in repr(logs)

    # Cached: scraping again within the TTL (allowed or denied) costs no review.
    reviews = authorizer.reviews
    assert reviews == 3
    for token, expected in ((identities.reader, 200), (identities.stranger, 403), ("not-a-token", 401)):
        assert (await scrape(url, trust, token))[0] == expected
    assert authorizer.reviews == reviews

    # Probes: plain HTTP, unauthenticated, on their own address.
    phost, pport = mgr.servers.bound["/readyz"]
    async with aiohttp.ClientSession() as session, session.get(f"http://{phost}:{pport}/healthz") as resp:
        assert resp.status == 200


async def test_the_review_failing_is_503_with_one_line(
    control_plane: ControlPlane, identities: Identities, tmp_path: Path
) -> None:
    """The controller lacking the review RBAC, or the API server unreachable: 503 and a one-line reason."""
    bare = await sa_client(control_plane, identities.bare, tmp_path / "bare.kubeconfig")
    cfg = control_plane.kubeconfig_dict()
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    (tmp_path / "gone.kubeconfig").write_text(json.dumps(cfg))
    gone = await Client.connect(tmp_path / "gone.kubeconfig", timeout=2)
    cert = serving_context()
    trust = ssl.create_default_context(cadata=cert.cert_pem.decode())
    try:
        for client, expected in (
            (bare, "Service Unavailable: TokenReview failed (HTTP 403): tokenreviews.authentication.k8s.io is "
                   f'forbidden: User "system:serviceaccount:{identities.namespace}:bare" cannot create resource'),
            (gone, "Service Unavailable: TokenReview failed (no answer): POST /apis/authentication.k8s.io/v1/"
                   "tokenreviews: ClientConnectorError"),
        ):  # fmt: skip
            servers = HttpServers(
                registry=client.metrics.registry, probes=Probes(), metrics_address="127.0.0.1:0", probe_address="0",
                metrics_security=MetricsSecurity(MetricsAuthorizer(client, timeout=2), cert.context),
            )  # fmt: skip
            await servers.start()
            try:
                host, port = servers.bound["/metrics"]
                status, body, _ = await scrape(f"https://{host}:{port}/metrics", trust, identities.reader)
            finally:
                await servers.stop()
            assert status == 503, body
            assert body.startswith(expected), body
            assert body.count("\n") == 1
            assert "Traceback" not in body
            assert identities.reader not in body
    finally:
        await bare.close()
        await gone.close()
