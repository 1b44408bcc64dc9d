"""The client side of the upload handshake: which status answers what, the PUT, and the watch loop.

The PUT goes to the local driver's real upload endpoint (cloud/local_upload_server.py) on a loopback port; the
watch loop runs against a scripted client (no API server in unit tests; e2e/test_plugins.py covers the real
one).
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from substratus_controller.cloud.local_upload_server import UploadServer, UploadSigner, read_md5
from substratus_controller.constants import Kind
from substratus_controller.plugins import handshake
from substratus_controller.plugins.commandline import Output, PluginError
from substratus_controller.plugins.handshake import ObjectDeleted, Target, URLExpired, Waiter, put_tarball, watch_object
from substratus_controller.plugins.tarball import Tarball, pack
from substratus_controller.plugins.uploadorigin import UPLOAD_ORIGINS_ENV, UPLOAD_ORIGINS_NAME, UPLOAD_ORIGINS_NAMESPACE
from substratus_controller.runtime.errors import Forbidden, NotFound
from substratus_controller.runtime.resources import CONFIGMAPS
from substratus_controller.runtime.watchstream import WatchEvent

TARGET = Target(Kind.MODEL, "ns", "m")


@pytest.fixture
def tarball(tmp_path: Path) -> Tarball:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    return pack(ctx, tmp_path / "archive.tar.gz")


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[tuple[UploadSigner, Path]]:
    signer = UploadSigner(key=b"k" * 32, base_dir=tmp_path / "bucket", public_url="http://127.0.0.1:0")
    (tmp_path / "bucket").mkdir()
    server = UploadServer(signer, host="127.0.0.1", port=0)
    await server.start()
    signer.public_url = f"http://127.0.0.1:{server.bound_port}"
    yield signer, tmp_path / "bucket" / "h" / "uploads" / "latest.tar.gz"
    await server.stop()


def quiet() -> tuple[Output, io.StringIO]:
    err = io.StringIO()
    return Output(0, out=io.StringIO(), err=err, tty=False), err


# ------------------------------------------------------------------------------------------------ the PUT
async def test_put_stores_the_tarball(endpoint: tuple[UploadSigner, Path], tarball: Tarball) -> None:
    signer, target = endpoint
    out, _ = quiet()
    await put_tarball(signer.sign(target, md5_hex=tarball.md5_hex), tarball, out)
    assert target.read_bytes() == tarball.path.read_bytes()
    assert read_md5(target) == tarball.md5_hex


async def test_an_expired_url_is_recognised(endpoint: tuple[UploadSigner, Path], tarball: Tarball) -> None:
    signer, target = endpoint
    url = signer.sign(target, md5_hex=tarball.md5_hex, now=time.time() - 3600)
    with pytest.raises(URLExpired):
        await put_tarball(url, tarball, quiet()[0])


async def test_other_refusals_name_the_status_not_the_url(
    endpoint: tuple[UploadSigner, Path], tarball: Tarball
) -> None:
    signer, target = endpoint
    url = signer.sign(target, md5_hex="0" * 32)  # signed for other content
    with pytest.raises(PluginError) as info:
        await put_tarball(url, tarball, quiet()[0])
    message = str(info.value)
    assert message.startswith("upload failed: HTTP 400 Bad Request")
    assert "sig=" not in message
    assert not target.exists()


async def test_an_unreachable_endpoint_does_not_leak_the_signature(tarball: Tarball) -> None:
    with pytest.raises(PluginError) as info:
        await put_tarball("http://127.0.0.1:1/upload/x?md5=a&expires=1&sig=topsecret", tarball, quiet()[0])
    assert "topsecret" not in str(info.value)


# ------------------------------------------------------------------------------------------------ the state machine
def model(
    generation: int = 2, *, upload: dict[str, Any] | None = None, conditions: list[dict[str, Any]] = ()
) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if upload is not None:
        status["buildUpload"] = upload
    return {"metadata": {"name": "m", "generation": generation, "resourceVersion": "1"}, "status": status,
            "spec": {"build": {"upload": {"requestID": "req-1"}}}}  # fmt: skip


def cond(ctype: str, status: str, reason: str = "R", generation: int = 2, message: str = "") -> dict[str, Any]:
    return {"type": ctype, "status": status, "reason": reason, "observedGeneration": generation, "message": message}


class Puts:
    def __init__(self, fail_with: list[Exception] | None = None) -> None:
        self.urls: list[str] = []
        self.fail_with = fail_with or []

    async def __call__(self, url: str, tarball: Tarball, out: Output) -> None:
        self.urls.append(url)
        if self.fail_with:
            raise self.fail_with.pop(0)


@pytest.fixture
def puts(monkeypatch: pytest.MonkeyPatch) -> Puts:
    p = Puts()
    monkeypatch.setattr(handshake, "put_tarball", p)
    monkeypatch.setenv(UPLOAD_ORIGINS_ENV, "http://x")  # the user's own upload origin (plugins/uploadorigin.py)
    return p


class NoOrigins:
    """A client of a cluster that publishes no upload origins (and may not read kube-public)."""

    def __init__(self, answer: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.answer, self.error = answer, error

    async def get(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        assert (res, name, namespace) == (CONFIGMAPS, UPLOAD_ORIGINS_NAME, UPLOAD_ORIGINS_NAMESPACE)
        if self.answer is None:
            raise self.error or NotFound("configmaps not found", code=404)
        return self.answer


def waiter(tarball: Tarball | None, client: Any = None, **kw: Any) -> Waiter:
    w = Waiter(client or NoOrigins(), TARGET, quiet()[0], tarball=tarball, **kw)
    w.request_id, w.generation = "req-1", 2
    return w


async def test_a_forged_signed_url_is_refused_and_nothing_is_sent(
    tarball: Tarball, puts: Puts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Security model (README): whoever may patch the object's status could point signedURL anywhere."""
    monkeypatch.delenv(UPLOAD_ORIGINS_ENV)
    w = waiter(tarball)
    forged = model(upload={"requestID": "req-1", "signedURL": "http://attacker.example/drop?sig=s3cret"})
    with pytest.raises(PluginError, match=r"refusing to upload the build context to http://attacker\.example:80") as e:
        await w.step(forged)
    assert "s3cret" not in str(e.value)
    assert puts.urls == []


@pytest.mark.parametrize(
    ("published", "url", "sent"),
    [
        pytest.param({"origins": "http://10.244.0.1:8082"}, "http://10.244.0.1:8082/up?sig=1", True, id="published"),
        pytest.param({"origins": "http://10.244.0.1:8082"}, "http://10.244.0.1:8083/upload/a", False, id="other-port"),
        pytest.param(None, "https://storage.googleapis.com/bucket/o?X-Goog-Signature=1", True, id="gcs"),
        pytest.param(None, "https://b.s3.us-east-1.amazonaws.com/o?X-Amz-Signature=1", True, id="s3"),
        pytest.param(None, "http://storage.googleapis.com/bucket/o", False, id="gcs-over-http"),
        pytest.param(None, "https://storage.googleapis.com.attacker.example/o", False, id="lookalike-host"),
    ],
)
async def test_the_cluster_publishes_its_upload_origins(
    tarball: Tarball, puts: Puts, monkeypatch: pytest.MonkeyPatch, published: dict[str, str] | None, url: str,
    sent: bool,
) -> None:  # fmt: skip
    monkeypatch.delenv(UPLOAD_ORIGINS_ENV)
    w = waiter(tarball, NoOrigins({"data": published} if published else None))
    signed = model(upload={"requestID": "req-1", "signedURL": url})
    if sent:
        await w.step(signed)
        assert puts.urls == [url]
    else:
        with pytest.raises(PluginError, match="refusing to upload"):
            await w.step(signed)
        assert puts.urls == []


async def test_an_unreadable_kube_public_falls_back_to_the_users_origins(tarball: Tarball, puts: Puts) -> None:
    w = waiter(tarball, NoOrigins(error=Forbidden("forbidden", code=403)))
    await w.step(model(upload={"requestID": "req-1", "signedURL": "http://x/mine"}))
    assert puts.urls == ["http://x/mine"]


async def test_uploads_once_to_the_url_for_our_request(tarball: Tarball, puts: Puts) -> None:
    w = waiter(tarball)
    assert not await w.step(model(upload={"requestID": "old", "signedURL": "http://x/old"}))
    assert puts.urls == []
    mine = model(upload={"requestID": "req-1", "signedURL": "http://x/mine"})
    assert not await w.step(mine)
    assert not await w.step(mine)
    assert puts.urls == ["http://x/mine"]


async def test_an_already_stored_context_is_not_uploaded(tarball: Tarball, puts: Puts) -> None:
    w = waiter(tarball)
    await w.step(model(upload={"requestID": "old", "storedMD5Checksum": tarball.md5_hex}))
    assert puts.urls == []
    assert w.skipped


async def test_built_counts_only_for_this_generation(tarball: Tarball, puts: Puts) -> None:
    w = waiter(tarball)
    assert not await w.step(model(conditions=[cond("Built", "True", generation=1)]))
    assert await w.step(model(conditions=[cond("Built", "True", generation=2)]))
    assert await w.step(model(generation=3, conditions=[cond("Built", "True", generation=3)]))


async def test_a_failed_build_is_an_error_with_its_message(tarball: Tarball, puts: Puts) -> None:
    w = waiter(tarball)
    failed = cond("Built", "False", "BuildFailed", message="Builder Job m-model-bld failed: BackoffLimitExceeded")
    with pytest.raises(PluginError, match="build failed: Builder Job m-model-bld failed: BackoffLimitExceeded"):
        await w.step(model(conditions=[failed]))
    assert not await waiter(tarball).step(model(conditions=[cond("Built", "False", "BuildFailed", generation=1)]))


async def test_an_invalid_spec_ends_the_wait(tarball: Tarball, puts: Puts) -> None:
    with pytest.raises(PluginError, match="UnsupportedGPU: GPU type nvidia-l4"):
        await waiter(tarball).step(
            model(conditions=[cond("Ready", "False", "UnsupportedGPU", message="GPU type nvidia-l4")])
        )


@pytest.mark.parametrize("reason", ["JobFailed", "Suspended", "BuildFailed"])
async def test_waiting_for_ready(reason: str) -> None:
    w = waiter(None, want_ready=True)
    assert not await w.step(model(conditions=[cond("Ready", "False", "PodNotReady")]))
    assert await w.step(model(conditions=[cond("Ready", "True", "PodReady")]))
    with pytest.raises(PluginError, match=f"will not become Ready: {reason}"):
        await w.step(model(conditions=[cond("Ready", "False", reason)]))


async def test_an_expired_url_is_retried_once_with_a_new_request_id(
    tarball: Tarball, monkeypatch: pytest.MonkeyPatch
) -> None:
    puts = Puts([URLExpired("expired"), URLExpired("expired")])
    monkeypatch.setattr(handshake, "put_tarball", puts)
    monkeypatch.setenv(UPLOAD_ORIGINS_ENV, "http://x")
    reapplied: list[str] = []

    async def reapply(request_id: str) -> dict[str, Any]:
        reapplied.append(request_id)
        return model(generation=3)

    w = waiter(tarball, reapply=reapply)
    await w.step(model(upload={"requestID": "req-1", "signedURL": "http://x/1"}))
    assert len(reapplied) == 1
    assert w.request_id == reapplied[0] != "req-1"
    assert w.generation == 3
    with pytest.raises(PluginError, match="expired again"):
        await w.step(model(generation=3, upload={"requestID": w.request_id, "signedURL": "http://x/2"}))


# ------------------------------------------------------------------------------------------------ the watch loop
class ScriptedClient:
    """Plays watch streams (one list per watch call) and GET answers."""

    def __init__(self, streams: list[list[WatchEvent]], gets: list[dict[str, Any]] = ()) -> None:
        self.streams = list(streams)
        self.gets = list(gets)
        self.watch_rvs: list[str | None] = []

    async def watch(self, res: Any, namespace: str | None = None, **kw: Any) -> AsyncIterator[WatchEvent]:
        self.watch_rvs.append(kw.get("resource_version"))
        assert kw.get("field_selector") == "metadata.name=m"
        for event in self.streams.pop(0) if self.streams else ():
            yield event

    async def get(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        if res == CONFIGMAPS:
            raise NotFound("configmaps not found", code=404)  # no published upload origins
        return self.gets.pop(0)


def version(rv: str) -> dict[str, Any]:
    return {"metadata": {"name": "m", "resourceVersion": rv}}


async def test_watch_resumes_after_the_server_ends_it_and_relists_when_expired() -> None:
    client = ScriptedClient(
        streams=[[WatchEvent("MODIFIED", version("2"))], [WatchEvent("ERROR", {"code": 410, "message": "too old"})],
                 [WatchEvent("MODIFIED", version("9"))], [WatchEvent("DELETED", version("10"))]],
        gets=[version("8")],
    )  # fmt: skip
    seen: list[str] = []

    async def follow() -> None:
        async for obj in watch_object(client, TARGET, version("1")):  # type: ignore[arg-type]
            seen.append(obj["metadata"]["resourceVersion"])

    with pytest.raises(ObjectDeleted, match=r"model\.substratus\.ai/m was deleted while waiting"):
        await follow()
    assert seen == ["1", "2", "8", "9"]
    assert client.watch_rvs == ["1", "2", "8", "9"]


async def test_run_returns_when_built(tarball: Tarball, puts: Puts) -> None:
    signed = model(upload={"requestID": "req-1", "signedURL": "http://x/u"})
    built = model(
        upload={"requestID": "req-1", "storedMD5Checksum": tarball.md5_hex},
        conditions=[cond("Uploaded", "True"), cond("Built", "True")],
    )
    client = ScriptedClient([[WatchEvent("MODIFIED", signed), WatchEvent("MODIFIED", built)]])
    out, err = quiet()
    w = Waiter(client, TARGET, out, tarball=tarball)  # type: ignore[arg-type]
    final = await w.run(model())
    assert final is built
    assert puts.urls == ["http://x/u"]
    assert "build context uploaded" in err.getvalue()
    assert "Built=True" in w.describe()
