"""The signed-URL upload handshake end to end with the local driver (the controller's own upload endpoint)."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from typing import Any

import aiohttp
import pytest

from e2e.conftest import condition, eventually, get, wait_condition
from substratus_controller.constants import Kind
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client

pytestmark = pytest.mark.e2e


def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def checksums(data: bytes) -> tuple[str, str]:
    raw = hashlib.md5(data, usedforsecurity=False).digest()
    return raw.hex(), base64.b64encode(raw).decode()


async def put(url: str, body: bytes, content_md5: str) -> int:
    headers = {"Content-Type": "application/octet-stream", "Content-MD5": content_md5}
    async with aiohttp.ClientSession() as s, s.put(url, data=body, headers=headers) as resp:
        return resp.status


async def signed_url_for(client: Client, namespace: str, name: str, request_id: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        up = ((await get(client, Kind.MODEL, namespace, name)).get("status") or {}).get("buildUpload") or {}
        return up if up.get("requestID") == request_id and up.get("signedURL") else None

    result: dict[str, Any] = await eventually(ready, timeout=30)
    return result


async def test_upload_build_from_awaiting_upload_to_ready(client: Client, namespace: str) -> None:
    body = tarball({"Dockerfile": b"FROM python:3.11-slim\nCOPY . /content\n", "model.py": b"print('hi')\n"})
    md5_hex, md5_b64 = checksums(body)
    model = {
        "apiVersion": "substratus.ai/v1",
        "kind": "Model",
        "metadata": {"name": "uploaded", "namespace": namespace},
        "spec": {"build": {"upload": {"md5Checksum": md5_hex, "requestID": "req-1"}}},
    }
    await client.create(RESOURCE_OF[Kind.MODEL], model)
    upload = await signed_url_for(client, namespace, "uploaded", "req-1")
    obj = await get(client, Kind.MODEL, namespace, "uploaded")
    assert condition(obj, "Uploaded")["reason"] == "AwaitingUpload"
    assert condition(obj, "Ready")["reason"] == "AwaitingUpload"
    assert "expiration" in upload

    # A body that does not match the signed md5 is refused; nothing changes.
    assert await put(upload["signedURL"], b"not the tarball", md5_b64) == 400
    still = await get(client, Kind.MODEL, namespace, "uploaded")
    assert condition(still, "Uploaded")["status"] == "False"

    # The right body: verified, then built, then the workload runs with the built image.
    assert await put(upload["signedURL"], body, md5_b64) == 200
    done = await wait_condition(client, Kind.MODEL, namespace, "uploaded", "Ready", "True", timeout=90)
    assert condition(done, "Uploaded")["reason"] == "UploadFound"
    assert condition(done, "Built")["status"] == "True"
    stored = done["status"]["buildUpload"]
    assert stored == {"requestID": "req-1", "storedMD5Checksum": md5_hex}, "the used URL left the status"
    assert done["spec"]["image"].endswith(f":{md5_hex}")
    job = await client.get(k8s.JOBS, "uploaded-model-bld", namespace)
    builder = job["spec"]["template"]["spec"]["containers"][0]  # buildah: the local cloud's default builder
    env = {e["name"]: e["value"] for e in builder["env"]}
    assert env["BUILD_TARBALL"] == f"/upload/{md5_hex}.tar.gz"  # exactly the verified upload
    assert env["BUILD_TARGET"] == done["spec"]["image"]


async def test_a_new_request_id_gets_a_fresh_url(client: Client, namespace: str) -> None:
    first = tarball({"Dockerfile": b"FROM scratch\n"})
    md5_1, _ = checksums(first)
    model = {
        "apiVersion": "substratus.ai/v1",
        "kind": "Model",
        "metadata": {"name": "again", "namespace": namespace},
        "spec": {"build": {"upload": {"md5Checksum": md5_1, "requestID": "a"}}},
    }
    await client.create(RESOURCE_OF[Kind.MODEL], model)
    old = await signed_url_for(client, namespace, "again", "a")
    # e.g. the first URL expired before the client used it: the client asks again with a new requestID.
    second = tarball({"Dockerfile": b"FROM scratch\nCOPY x /x\n", "x": b"1"})
    md5_2, b64_2 = checksums(second)
    new_upload = {"spec": {"build": {"upload": {"md5Checksum": md5_2, "requestID": "b"}}}}
    await client.patch(RESOURCE_OF[Kind.MODEL], "again", new_upload, namespace)
    new = await signed_url_for(client, namespace, "again", "b")
    assert new["signedURL"] != old["signedURL"]
    assert f"md5={md5_2}" in new["signedURL"]
    # The old URL cannot be used for the new content (it is bound to the old md5).
    assert await put(old["signedURL"], second, b64_2) == 400
    assert await put(new["signedURL"], second, b64_2) == 200
    await wait_condition(client, Kind.MODEL, namespace, "again", "Ready", "True", timeout=90)


async def test_signed_urls_never_reach_the_controller_log(stack: Any) -> None:
    log = stack.controller_log.read_text(errors="replace")
    assert "sig=" not in log
    assert "/upload/" not in log
