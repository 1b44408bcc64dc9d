"""Authenticated metrics, as controller-runtime's `filters.WithAuthenticationAndAuthorization`: every request to
`/metrics` carries `Authorization: Bearer <token>`; the token is checked with a TokenReview and its user
authorized with a SubjectAccessReview for the non-resource URL (`get` on `/metrics`). Also the serving
certificate: a cert/key pair from a directory, or a self-signed one generated in memory.

Contract:
- Decisions: no or malformed header -> 401; token not authenticated -> 401; not allowed -> 403; the API
  failing or timing out (or answering nonsense) -> 503 with a one-line reason; allowed -> 200. Never a
  traceback, never the token in a reason or a log line.
- Allowed and denied decisions (200, 401, 403) are cached for `ttl` seconds keyed by the token's sha256 (the
  token itself is never stored), at most `max_entries` of them; errors (503) are not cached. Concurrent
  requests with the same token share one review pair.
- TLS: `serving_context(cert_dir)` loads `<cert_dir>/tls.crt` and `tls.key` (controller-runtime's names);
  with no directory it generates a self-signed ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1,
  valid for a year, that never touches a disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from substratus_controller.jsontypes import JSON

from .client import Client
from .clock import Clock, RealClock
from .errors import ApiError
from .redact import redact
from .resources import SUBJECTACCESSREVIEWS, TOKENREVIEWS

log = structlog.get_logger("substratus.runtime.metricsauth")

CERT_NAME = "tls.crt"
KEY_NAME = "tls.key"
_MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request: an HTTP status (200, 401, 403 or 503), a one-line reason, the user."""

    status: int
    reason: str
    user: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when absent or malformed.

    As Kubernetes' bearer-token authenticator: the scheme is case-insensitive, exactly one token follows it.
    """
    if not header:
        return None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


def one_line(text: str, limit: int = _MAX_REASON) -> str:
    """`text` redacted, on one line, at most `limit` characters."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DecisionCache:
    """Decisions by sha256(token) for `ttl` seconds; at most `max_entries` (the oldest go first)."""

    def __init__(self, *, ttl: float = 10.0, max_entries: int = 1024, clock: Clock | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock or RealClock()
        self._entries: OrderedDict[str, tuple[float, Decision]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Decision | None:
        key = token_key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, decision = entry
        if self.clock.now() >= expires:
            del self._entries[key]
            return None
        return decision

    def put(self, token: str, decision: Decision) -> None:
        if self.ttl <= 0:
            return
        key = token_key(token)
        self._entries.pop(key, None)
        self._entries[key] = (self.clock.now() + self.ttl, decision)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class MetricsAuthorizer:
    """Decides requests to `path` with TokenReviews and SubjectAccessReviews through `client`.

    The controller's own identity needs `create` on tokenreviews.authentication.k8s.io and
    subjectaccessreviews.authorization.k8s.io; scrapers need `get` on the non-resource URL `path`.
    """

    def __init__(
        self,
        client: Client,
        *,
        path: str = "/metrics",
        verb: str = "get",
        ttl: float = 10.0,
        max_entries: int = 1024,
        timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.verb = verb
        self.timeout = timeout
        self.cache = DecisionCache(ttl=ttl, max_entries=max_entries, clock=clock)
        self._inflight: dict[str, asyncio.Future[Decision]] = {}
        self.reviews = 0  # review pairs started (TokenReviews sent), for tests and debugging

    async def authorize(self, authorization: str | None) -> Decision:
        """The decision for a request whose `Authorization` header is `authorization`."""
        token = bearer_token(authorization)
        if token is None:
            return Decision(401, "Unauthorized: a bearer token is required (Authorization: Bearer <token>)")
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        key = token_key(token)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            decision = await self._decide(token)
        except asyncio.CancelledError:  # waiters on the same token get an answer, not a hang
            future.set_result(Decision(503, "Service Unavailable: the authorization check was interrupted"))
            raise
        except Exception as exc:  # _decide maps what it expects; anything else is a bug, still no traceback
            log.error("metrics_authorization_failed", error=type(exc).__name__)
            decision = Decision(503, f"Service Unavailable: authorization failed ({type(exc).__name__})")
        finally:
            self._inflight.pop(key, None)
        future.set_result(decision)
        if decision.status != 503:
            self.cache.put(token, decision)
        return decision

    async def _decide(self, token: str) -> Decision:
        self.reviews += 1
        try:
            review = await self.client.create(TOKENREVIEWS, token_review(token), timeout=self.timeout)
        except ApiError as exc:
            return self._unavailable("TokenReview", exc)
        status = review.get("status") or {}
        user = status.get("user") or {}
        if not status.get("authenticated") or not user.get("username"):
            return Decision(401, "Unauthorized: the token is not valid")
        username = str(user["username"])
        try:
            access = await self.client.create(
                SUBJECTACCESSREVIEWS, subject_access_review(user, path=self.path, verb=self.verb), timeout=self.timeout
            )
        except ApiError as exc:
            return self._unavailable("SubjectAccessReview", exc)
        result = access.get("status") or {}
        if result.get("allowed") is True and not result.get("denied"):
            return Decision(200, "OK", user=username)
        why = str(result.get("reason") or result.get("evaluationError") or "")
        message = f'Forbidden: user "{username}" cannot {self.verb} path "{self.path}"'
        return Decision(403, one_line(f"{message}: {why}" if why else message), user=username)

    def _unavailable(self, review: str, exc: ApiError) -> Decision:
        what = f"HTTP {exc.code}" if exc.code else "no answer"
        reason = one_line(f"Service Unavailable: {review} failed ({what}): {exc.message}")
        log.warning("metrics_authorization_unavailable", review=review, code=exc.code, error=one_line(exc.message))
        return Decision(503, reason)


def token_review(token: str) -> JSON:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}


def subject_access_review(user: JSON, *, path: str, verb: str) -> JSON:
    """A SubjectAccessReview for `user` (a TokenReview's status.user) doing `verb` on the URL `path`."""
    spec: dict[str, Any] = {"user": user["username"], "nonResourceAttributes": {"path": path, "verb": verb}}
    for field in ("uid", "groups", "extra"):
        if user.get(field):
            spec[field] = user[field]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


# ------------------------------------------------------------------------------------------------- TLS
@dataclass(frozen=True)
class ServingCert:
    """A server-side TLS context and the certificate (PEM) it presents."""

    context: ssl.SSLContext
    cert_pem: bytes


def serving_context(cert_dir: str | os.PathLike[str] = "") -> ServingCert:
    """TLS for the metrics server: `<cert_dir>/tls.crt` + `tls.key`, else a self-signed certificate."""
    if cert_dir:
        cert, key = Path(cert_dir) / CERT_NAME, Path(cert_dir) / KEY_NAME
        for f in (cert, key):
            if not f.is_file():
                raise ValueError(f"metrics certificate directory {str(cert_dir)!r} has no {f.name}")
        ctx = _server_context()
        ctx.load_cert_chain(cert, key)
        return ServingCert(ctx, cert.read_bytes())
    cert_pem, key_pem = self_signed_cert()
    ctx = _server_context()
    with _in_memory_file(cert_pem) as cert_path, _in_memory_file(key_pem) as key_path:
        ctx.load_cert_chain(cert_path, key_path)
    return ServingCert(ctx, cert_pem)


def _server_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def self_signed_cert(
    hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"), *, days: int = 365
) -> tuple[bytes, bytes]:
    """A self-signed serving certificate for `hosts` (DNS names or IP addresses): (cert PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{hosts[0]}@{int(now.timestamp())}")])
    usage = x509.KeyUsage(
        digital_signature=True, key_encipherment=False, content_commitment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@contextlib.contextmanager
def _in_memory_file(data: bytes) -> Iterator[str]:
    """A path holding `data` for `ssl.load_cert_chain`, which reads only files: an anonymous memory file
    (Linux memfd, nothing on disk, fine on a read-only root), else a private temporary file removed at once."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("metrics-tls", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="metrics-tls-") as d:
        path = Path(d) / "pem"
        path.touch(mode=0o600)
        path.write_bytes(data)
        yield str(path)
