"""The local driver's upload endpoint: HMAC-signed, expiring PUT URLs served by the controller itself.

URL: `<public-url>/upload/<object path>?md5=<hex>&expires=<unix seconds>&sig=<hex HMAC-SHA256>`, where the
object path is relative to the artifact directory and the signature covers method, path, md5 and expiry.

A PUT is accepted only when, in this order: md5, expires and sig are of their form (400), the signature
matches (403), the URL has not expired (403), `Content-Type` is `application/octet-stream` (415),
`Content-MD5` is present and equals the signed md5 (400), the URL was not used for a verified upload
before (403: a URL is spent once its upload is verified), the declared Content-Length fits `max_bytes`
(413), fewer than `max_concurrent` uploads are being received (503 with Retry-After), the body never pauses
for `idle_timeout` (408) nor exceeds `max_bytes` (413), and the body's md5 equals the signed one (400).
Every refusal is a one-line reason. The body streams into a temporary file next to the target,
which is renamed into place only after verification, so a broken or partial upload never replaces a good
tarball; the verified md5 is then recorded beside it (`<object>.md5`), which is what `object_md5` reads.

A connection that has not sent complete request headers within `header_timeout` (10 s), or sends nothing
more for that long between requests, is closed (aiohttp's keep-alive timer, which runs until the headers
are parsed), so half-open connections cannot pile up.

Invariants: nothing outside the artifact directory is ever written (paths are normalised and checked);
URLs and signatures are never logged; the body size is capped (`max_bytes`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web

log = structlog.get_logger("substratus.cloud.upload")
MAX_EXPIRY = 300
CONTENT_TYPE = "application/octet-stream"
DEFAULT_MAX_BYTES = 20 * 1024**3
DEFAULT_MAX_CONCURRENT = 8  # uploads received at once; more get 503 with Retry-After
IDLE_TIMEOUT = 30.0  # seconds a body may send nothing before the upload is dropped (408)
HEADER_TIMEOUT = 10.0  # seconds a connection may take to send its request headers (or idle between requests)


MALFORMED_URL = "malformed URL: md5, expires and sig must be 32 hex digits, unix seconds and 64 hex digits"
_MD5 = re.compile(r"[0-9a-f]{32}")
_EXPIRES = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() takes other scripts' digits too
_SIG = re.compile(r"[0-9a-f]{64}")  # compare_digest refuses non-ASCII text with a TypeError (an HTTP 500)


def _signature(key: bytes, path: str, md5_hex: str, expires: int) -> str:
    message = f"PUT\n{path}\n{md5_hex}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def md5_record(target: Path) -> Path:
    return target.with_name(target.name + ".md5")


class UploadSigner:
    """Signs and verifies upload URLs for objects under `base_dir` (pure apart from the clock)."""

    def __init__(self, *, key: bytes, base_dir: Path, public_url: str) -> None:
        if len(key) < 16:
            raise ValueError("the upload signing key must be at least 16 bytes")
        self.key = key
        self.base_dir = base_dir.resolve()
        self.public_url = public_url.rstrip("/")

    def relative(self, target: Path) -> str:
        path = target.resolve().relative_to(self.base_dir)  # ValueError when outside
        return path.as_posix()

    def sign(self, target: Path, *, md5_hex: str, expires_in: int = MAX_EXPIRY, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + min(expires_in, MAX_EXPIRY))
        path = self.relative(target)
        query = urlencode(
            {"md5": md5_hex.lower(), "expires": expires, "sig": _signature(self.key, path, md5_hex.lower(), expires)}
        )
        return f"{self.public_url}/upload/{quote(path)}?{query}"

    def verify(self, path: str, md5_hex: str, expires: str, sig: str, *, now: float | None = None) -> str | None:
        """None when valid, else why not (MALFORMED_URL when a parameter is not of its form)."""
        if not (_MD5.fullmatch(md5_hex) and _EXPIRES.fullmatch(expires) and _SIG.fullmatch(sig)):
            return MALFORMED_URL
        expected = _signature(self.key, path, md5_hex, int(expires))
        if not hmac.compare_digest(expected, sig):
            return "bad signature"
        if int(expires) < (now if now is not None else time.time()):
            return "URL expired"
        return None


class UploadServer:
    """An aiohttp server accepting signed PUTs (see module docstring); `start()` / `stop()`."""

    def __init__(self, signer: UploadSigner, *, host: str | None, port: int, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT, idle_timeout: float = IDLE_TIMEOUT,
                 header_timeout: float = HEADER_TIMEOUT) -> None:  # fmt: skip
        self.signer = signer
        self.host, self.port = host, port
        self.max_bytes = max_bytes
        self.max_concurrent = max_concurrent
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.active = 0  # uploads being received now
        self._spent: dict[str, int] = {}  # signatures of verified uploads -> their expiry (a URL is used once)
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_bytes)
        app.router.add_put("/upload/{path:.+}", self._put)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, keepalive_timeout=self.header_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host=self.host, port=self.port)
        await site.start()
        server = site._server
        for sock in getattr(server, "sockets", None) or ():
            self.bound_port = int(sock.getsockname()[1])
        log.info("upload_server_started", port=self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve(self) -> None:
        """Run until cancelled (a supervised manager runnable)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _put(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        q = request.query
        md5_hex = q.get("md5", "").lower()
        problem = self.signer.verify(path, md5_hex, q.get("expires", ""), q.get("sig", ""))
        if problem is not None:
            log.warning("upload_rejected", reason=problem)
            return web.Response(status=400 if problem == MALFORMED_URL else 403, text=f"{problem}\n")
        target = (self.signer.base_dir / path).resolve()
        if self.signer.base_dir not in target.parents:
            return web.Response(status=403, text="path outside the artifact directory\n")
        if request.headers.get("Content-Type", "").split(";")[0].strip() != CONTENT_TYPE:
            return web.Response(status=415, text=f"Content-Type must be {CONTENT_TYPE}\n")
        try:
            header_md5 = base64.b64decode(request.headers.get("Content-MD5", ""), validate=True).hex()
        except (binascii.Error, ValueError):
            header_md5 = ""
        if header_md5 != md5_hex:
            return web.Response(status=400, text="Content-MD5 missing or not the signed checksum\n")
        return await self._accept(request, target, path, md5_hex, q.get("sig", ""), int(q.get("expires", "0")))

    async def _accept(
        self, request: web.Request, target: Path, path: str, md5_hex: str, sig: str, expires: int
    ) -> web.Response:
        """The checks that cost nothing first (spent URL, declared size, free slot), then the body."""
        now = time.time()
        self._spent = {k: v for k, v in self._spent.items() if v >= now}
        if sig in self._spent:
            return web.Response(status=403, text="URL already used: ask for a new one (a new requestID)\n")
        if (request.content_length or 0) > self.max_bytes:
            return web.Response(status=413, text=f"body too large: at most {self.max_bytes} bytes\n")
        if self.active >= self.max_concurrent:
            return web.Response(status=503, headers={"Retry-After": "5"}, text="too many uploads at once; retry\n")
        self.active += 1
        try:
            received = await self._receive(request, target)
        except TimeoutError:
            return web.Response(status=408, text=f"no data for {self.idle_timeout:g}s\n")
        finally:
            self.active -= 1
        if received is None:
            return web.Response(status=413, text=f"body too large: at most {self.max_bytes} bytes\n")
        if received != md5_hex:
            log.warning("upload_rejected", reason="body md5 mismatch")
            return web.Response(status=400, text="the body's md5 does not match Content-MD5\n")
        self._spent[sig] = expires
        log.info("upload_stored", object=path, md5=md5_hex)
        return web.Response(status=200, text="stored\n")

    async def _receive(self, request: web.Request, target: Path) -> str | None:
        """Stream the body into a temporary file; rename into place if its md5 is the signed one.

        Returns the body's md5 (hex), or None when it exceeded max_bytes; TimeoutError when no data came for
        idle_timeout seconds. The target is untouched unless the caller's checksum matched."""
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        fd, tmp_name = await asyncio.to_thread(tempfile.mkstemp, prefix=".upload-", dir=target.parent)
        tmp = Path(tmp_name)
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := await asyncio.wait_for(request.content.read(1 << 20), self.idle_timeout):
                    size += len(chunk)
                    if size > self.max_bytes:
                        return None
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            md5_hex = digest.hexdigest()
            if md5_hex == request.query.get("md5", "").lower():
                await asyncio.to_thread(self._commit, tmp, target, md5_hex)
            return md5_hex
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)

    @staticmethod
    def _commit(tmp: Path, target: Path, md5_hex: str) -> None:
        tmp.chmod(0o644)
        os.replace(tmp, target)
        record = md5_record(target)
        fd, name = tempfile.mkstemp(prefix=".md5-", dir=target.parent)
        with os.fdopen(fd, "w") as f:
            f.write(md5_hex + "\n")
        os.replace(name, record)


def read_md5(target: Path) -> str | None:
    """The verified md5 recorded for `target`, or None when there is no verified upload."""
    try:
        value = md5_record(target).read_text().strip().lower()
    except FileNotFoundError:
        return None
    return value if len(value) == 32 and target.exists() else None
