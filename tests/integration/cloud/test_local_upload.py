"""The local driver's upload endpoint over real HTTP on loopback: every rejection, and atomic storage."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest

from substratus_controller.cloud.base import BucketURL
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.cloud.local_upload_server import UploadServer, UploadSigner
from substratus_controller.constants import Kind

pytestmark = pytest.mark.integration
KEY = b"k" * 32


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[tuple[LocalDriver, UploadServer]]:
    signer = UploadSigner(key=KEY, base_dir=tmp_path, public_url="http://127.0.0.1:0")
    server = UploadServer(signer, host="127.0.0.1", port=0, max_bytes=1 << 20)
    await server.start()
    signer.public_url = f"http://127.0.0.1:{server.bound_port}"
    driver = LocalDriver(artifact_bucket=BucketURL.parse(f"file://{tmp_path}"), signer=signer)
    yield driver, server
    await server.stop()


def md5(data: bytes) -> tuple[str, str]:
    raw = hashlib.md5(data, usedforsecurity=False).digest()
    return raw.hex(), base64.b64encode(raw).decode()


async def put(
    url: str, body: bytes, *, content_md5: str | None, content_type: str = "application/octet-stream"
) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if content_md5 is not None:
        headers["Content-MD5"] = content_md5
    async with aiohttp.ClientSession() as s, s.put(url, data=body, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_a_correct_upload_is_stored_and_its_md5_recorded(endpoint: tuple[LocalDriver, UploadServer]) -> None:
    driver, _ = endpoint
    body = b"tarball bytes" * 1000
    hex_md5, b64 = md5(body)
    target = driver.upload_url(Kind.MODEL, "ns", "m", hex_md5)
    assert await driver.object_md5(target) is None
    url = await driver.signed_upload_url(target, md5_hex=hex_md5)
    assert parse_qs(urlsplit(url).query)["expires"][0].isdigit()
    assert await put(url, body, content_md5=b64) == (200, "stored\n")
    assert Path(target.path).read_bytes() == body
    assert await driver.object_md5(target) == hex_md5
    assert not [p for p in Path(target.path).parent.iterdir() if p.name.startswith(".")], "no temp files left"


async def test_expiry_is_at_most_300_seconds(endpoint: tuple[LocalDriver, UploadServer]) -> None:
    driver, _ = endpoint
    url = await driver.signed_upload_url(
        driver.upload_url(Kind.MODEL, "ns", "m", "0" * 32), md5_hex="0" * 32, expires_in=9999
    )
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert expires - time.time() <= 300


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        ("signature", 403),
        ("md5-param", 403),
        ("path", 403),
        ("expired", 403),
        ("content-type", 415),
        ("no-content-md5", 400),
        ("other-content-md5", 400),
        ("body", 400),
    ],
)
async def test_bad_requests_are_rejected_and_nothing_is_stored(
    endpoint: tuple[LocalDriver, UploadServer], tmp_path: Path, tamper: str, status: int
) -> None:
    driver, server = endpoint
    body = b"good"
    hex_md5, b64 = md5(body)
    target = driver.upload_url(Kind.DATASET, "ns", "d", hex_md5)
    url = await driver.signed_upload_url(target, md5_hex=hex_md5)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    content_md5: str | None = b64
    content_type = "application/octet-stream"
    if tamper == "signature":
        url = url.replace(query["sig"][0], "0" * 64)
    elif tamper == "md5-param":
        url = url.replace(f"md5={hex_md5}", f"md5={md5(b'evil')[0]}")
    elif tamper == "path":
        url = urlunsplit(parts._replace(path=parts.path.replace("uploads", "other")))
    elif tamper == "expired":
        url = server.signer.sign(Path(target.path), md5_hex=hex_md5, now=time.time() - 301)
    elif tamper == "content-type":
        content_type = "text/plain"
    elif tamper == "no-content-md5":
        content_md5 = None
    elif tamper == "other-content-md5":
        content_md5 = md5(b"other")[1]
    elif tamper == "body":
        body = b"evil"  # Content-MD5 still claims the signed md5
    code, text = await put(url, body, content_md5=content_md5, content_type=content_type)
    assert code == status, text
    assert not Path(target.path).exists()
    assert await driver.object_md5(target) is None


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("sig", "é" * 64),  # non-ASCII: hmac.compare_digest raised TypeError (HTTP 500 with a traceback)
        ("sig", "z" * 64),
        ("expires", "9" * 5000),  # beyond int()'s digit limit: ValueError
        ("expires", "١٢٣٤"),  # Arabic-Indic digits pass str.isdigit()
        ("expires", ""),
        ("md5", "not-hex"),
    ],
)
async def test_a_malformed_url_gets_a_400_with_a_one_line_reason(
    endpoint: tuple[LocalDriver, UploadServer], param: str, value: str
) -> None:
    """Security model (README): every malformed request is a 4xx with a one-line reason, never a 500."""
    driver, _ = endpoint
    body = b"good"
    hex_md5, b64 = md5(body)
    target = driver.upload_url(Kind.DATASET, "ns", "d", hex_md5)
    parts = urlsplit(await driver.signed_upload_url(target, md5_hex=hex_md5))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {param: value}
    url = urlunsplit(parts._replace(query=urlencode(query)))
    code, text = await put(url, body, content_md5=b64)
    assert (code, text.count("\n")) == (400, 1), text
    assert text.startswith("malformed URL"), text
    assert not Path(target.path).exists()


async def test_uploads_are_stored_under_their_md5_and_a_bad_one_touches_nothing(
    endpoint: tuple[LocalDriver, UploadServer],
) -> None:
    driver, _ = endpoint
    good = b"version one"
    hex_md5, b64 = md5(good)
    target = driver.upload_url(Kind.NOTEBOOK, "ns", "nb", hex_md5)
    assert target.path.endswith(f"/uploads/{hex_md5}.tar.gz")
    assert (await put(await driver.signed_upload_url(target, md5_hex=hex_md5), good, content_md5=b64))[0] == 200
    # A second upload, for another md5, goes to its own name; one whose body does not match is not stored at
    # all, and the first stays as it was verified.
    new_hex, new_b64 = md5(b"version two")
    other = driver.upload_url(Kind.NOTEBOOK, "ns", "nb", new_hex)
    assert other != target
    url = await driver.signed_upload_url(other, md5_hex=new_hex)
    assert (await put(url, b"corrupted!!", content_md5=new_b64))[0] == 400
    assert not Path(other.path).exists()
    assert await driver.object_md5(other) is None
    assert Path(target.path).read_bytes() == good
    assert await driver.object_md5(target) == hex_md5


async def test_uploads_beyond_the_concurrency_limit_get_503(endpoint: tuple[LocalDriver, UploadServer]) -> None:
    driver, server = endpoint
    server.max_concurrent = 1
    release = asyncio.Event()
    first_body = b"slow body"
    hex_1, b64_1 = md5(first_body)
    url_1 = await driver.signed_upload_url(driver.upload_url(Kind.MODEL, "ns", "one", hex_1), md5_hex=hex_1)

    async def slow() -> AsyncIterator[bytes]:
        yield first_body[:4]
        await release.wait()
        yield first_body[4:]

    async def first() -> tuple[int, str]:
        headers = {"Content-Type": "application/octet-stream", "Content-MD5": b64_1}
        async with aiohttp.ClientSession() as s, s.put(url_1, data=slow(), headers=headers) as resp:
            return resp.status, await resp.text()

    task = asyncio.create_task(first())
    for _ in range(100):
        if server.active:
            break
        await asyncio.sleep(0.05)
    assert server.active == 1
    body = b"second"
    hex_2, b64_2 = md5(body)
    url_2 = await driver.signed_upload_url(driver.upload_url(Kind.MODEL, "ns", "two", hex_2), md5_hex=hex_2)
    code, text = await put(url_2, body, content_md5=b64_2)
    assert code == 503, text
    release.set()
    assert await task == (200, "stored\n")
    assert await put(url_2, body, content_md5=b64_2) == (200, "stored\n")


async def test_a_body_that_stops_sending_is_dropped_after_the_idle_timeout(tmp_path: Path) -> None:
    signer = UploadSigner(key=KEY, base_dir=tmp_path, public_url="http://127.0.0.1:0")
    server = UploadServer(signer, host="127.0.0.1", port=0, idle_timeout=0.3)

    class Stalled:
        async def read(self, _: int) -> bytes:
            await asyncio.sleep(3600)
            return b""

    class Request:
        content = Stalled()
        query: dict[str, str] = {"md5": "0" * 32}

    target = tmp_path / "uploads" / "x.tar.gz"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await server._receive(Request(), target)  # type: ignore[arg-type]
    assert time.monotonic() - started < 3
    assert not list(target.parent.iterdir()), "the temporary file is removed"
