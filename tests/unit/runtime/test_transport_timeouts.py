"""Every outbound call has a timeout, the 401 credential reload included (README, Security model; fast tier, a real
HTTP server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import Unavailable


class Config:
    """The parts of kubernetes-asyncio's Configuration the transport reads."""

    def __init__(self, host: str) -> None:
        self.host, self.username, self.verify_ssl = host, "", True
        self.ssl_ca_cert = self.cert_file = self.key_file = None

    async def get_api_key_with_prefix(self, _: str) -> str:
        return "Bearer expired"


@pytest.fixture
async def always_401() -> AsyncIterator[str]:
    async def handler(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "code": 401, "message": "Unauthorized"}, status=401)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_hanging_credential_reload_is_unavailable_within_the_timeout(always_401: str) -> None:
    async def hang() -> Any:
        await asyncio.sleep(3600)

    client = Client(Config(always_401), timeout=0.5, reload=hang)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable, match=r"reloading the credentials took over 0\.5s"):
            await client.request("GET", "/api")
    finally:
        await client.close()
    assert time.monotonic() - started < 5
