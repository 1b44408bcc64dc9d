"""The gcp driver against a real Cloud Storage emulator (gcp-storage-emulator, a server process on loopback).

What the emulator can and cannot show:
- It serves the JSON API the google-cloud-storage client speaks, so `object_md5` (object metadata, md5Hash
  in base64 -> hex, missing object -> None) runs exactly as against Cloud Storage.
- It accepts XML-API style `PUT /<bucket>/<object>` requests, so a PUT to our V4 signed URL (which targets
  STORAGE_EMULATOR_HOST) really stores the object, and the md5 the driver then reads is the body's.
- It does NOT check V4 signatures, expiry or Content-MD5 (it accepts any body). Those are covered by
  verifying the signature offline (tests/unit/cloud/test_gcp_signing.py), which proves Cloud Storage would
  reject a body or Content-MD5 other than the signed one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from substratus_controller.cloud.base import BucketURL, DriverSettings, StorageError
from substratus_controller.cloud.gcp import GCPDriver, create_driver
from substratus_controller.constants import Kind
from substratus_controller.testing import free_port
from tests.unit.cloud.test_gcp_signing import key_credentials, make_key, verify_v4_put

pytestmark = pytest.mark.integration
BUCKET = "test-artifacts"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """`host:port` of a fresh in-memory gcp-storage-emulator with the bucket BUCKET."""
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        pytest.fail("gcp-storage-emulator is not installed: .venv/bin/pip install 'gcp-storage-emulator>=2026.7.19'")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
         "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"gcp-storage-emulator did not start on {host}: {err[-2000:]}")
                time.sleep(0.1)
        client(host).create_bucket(BUCKET)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(host: str) -> Any:
    return storage.Client(
        project="test-project",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": f"http://{host}"},
    )


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return make_key()


@pytest.fixture
async def gcp(emulator: str, key: rsa.RSAPrivateKey) -> GCPDriver:
    """The driver as create_driver builds it from the environment, pointed at the emulator."""
    settings = DriverSettings(
        cluster_name="test-cluster",
        artifact_bucket_url=f"gs://{BUCKET}",
        registry_url="registry.test/substratus",
        env={"PROJECT_ID": "test-project", "STORAGE_EMULATOR_HOST": emulator},
    )
    return await create_driver(settings, metadata_host="127.0.0.1:9", credentials=key_credentials(key))


def md5(data: bytes) -> tuple[str, str]:
    raw = hashlib.md5(data, usedforsecurity=False).digest()
    return raw.hex(), base64.b64encode(raw).decode()


async def test_object_md5_of_an_uploaded_object(gcp: GCPDriver, emulator: str) -> None:
    target = gcp.upload_url(Kind.MODEL, "ns", "uploaded", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    body = b"a tarball\x00\xff" * 4096
    await asyncio.to_thread(
        client(emulator).bucket(BUCKET).blob(target.path).upload_from_string, body, "application/octet-stream"
    )
    got = await gcp.object_md5(target)
    assert got == md5(body)[0]
    assert got == got.lower()
    assert len(got) == 32


async def test_object_md5_of_a_missing_object_is_none(gcp: GCPDriver) -> None:
    assert (
        await gcp.object_md5(gcp.upload_url(Kind.MODEL, "ns", "never-uploaded", "5eb63bbbe01eeed093cb22bb8f5acdc3"))
        is None
    )


async def test_object_md5_in_a_missing_bucket_is_none(gcp: GCPDriver) -> None:
    assert await gcp.object_md5(BucketURL.parse("gs://no-such-bucket/x/uploads/latest.tar.gz")) is None


async def test_a_put_to_the_signed_url_stores_the_object(gcp: GCPDriver, emulator: str, key: rsa.RSAPrivateKey) -> None:
    target = gcp.upload_url(Kind.DATASET, "ns", "signed-put", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    body = b"uploaded through the signed URL" * 1000
    hex_md5, b64_md5 = md5(body)
    url = await gcp.signed_upload_url(target, md5_hex=hex_md5)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == f"http://{emulator}"
    assert parts.path == f"/{BUCKET}/{target.path}"
    verify_v4_put(url, content_md5=b64_md5, public_key=key.public_key())

    headers = {"Content-Type": "application/octet-stream", "Content-MD5": b64_md5}
    async with aiohttp.ClientSession() as session, session.put(url, data=body, headers=headers) as response:
        assert response.status == 200, await response.text()
    assert await gcp.object_md5(target) == hex_md5
    stored = await asyncio.to_thread(client(emulator).bucket(BUCKET).blob(target.path).download_as_bytes)
    assert stored == body


async def test_a_replaced_object_reports_the_new_md5(gcp: GCPDriver, emulator: str) -> None:
    target = gcp.upload_url(Kind.NOTEBOOK, "ns", "replaced", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    blob = client(emulator).bucket(BUCKET).blob(target.path)
    for body in (b"first", b"second version"):
        await asyncio.to_thread(blob.upload_from_string, body)
        assert await gcp.object_md5(target) == md5(body)[0]


async def test_an_unreachable_storage_endpoint_is_a_timely_storage_error(key: rsa.RSAPrivateKey) -> None:
    gcp = GCPDriver(
        cluster_name="c",
        artifact_bucket=BucketURL.parse(f"gs://{BUCKET}"),
        registry_url="r",
        principal="substratus@test-project.iam.gserviceaccount.com",
        project_id="test-project",
        storage_endpoint=f"127.0.0.1:{free_port()}",
        credentials=key_credentials(key),
        call_timeout=3,
    )
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"reading the metadata of gs://test-artifacts/x/y"):
        await gcp.object_md5(BucketURL.parse(f"gs://{BUCKET}/x/y"))
    assert time.monotonic() - started < 5
