"""gcp settings auto-configuration against a real HTTP server on loopback that behaves like the GCE metadata
server (`/computeMetadata/v1/...`, requests must carry `Metadata-Flavor: Google`, answers carry it too, 404
for unset values). `FakeMetadataServer` also serves what google-auth's Compute Engine credentials ask for
(service account info and tokens); test_gcp_iam.py uses that for the Workload Identity signing path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from substratus_controller.cloud.base import CloudConfigError, DriverSettings
from substratus_controller.cloud.gcp import create_driver, read_metadata
from substratus_controller.testing import free_port

pytestmark = pytest.mark.integration

GKE = {
    "project/project-id": "acme-ml",
    "instance/attributes/cluster-name": "prod",
    "instance/attributes/cluster-location": "us-central1-a",
}


class FakeMetadataServer:
    """The GCE metadata endpoints on loopback. `values` maps paths under /computeMetadata/v1/ to answers."""

    def __init__(self, values: dict[str, str] | None = None, *, email: str = "", token: str = "") -> None:
        self.values = dict(GKE if values is None else values)
        self.email, self.token = email, token
        self.requests: Counter[str] = Counter()
        self.delay = 0.0
        self.flavor = True  # answer with Metadata-Flavor: Google (an impostor would not)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> FakeMetadataServer:
        app = web.Application()
        app.router.add_get("/", self._root)
        app.router.add_get("/computeMetadata/v1/{path:.*}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _headers(self) -> dict[str, str]:
        return {"Metadata-Flavor": "Google"} if self.flavor else {}

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="computeMetadata/\n", headers=self._headers())

    async def _get(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.requests[path] += 1
        if self.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.delay)
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.", headers=self._headers())
        if self.email and path.startswith("instance/service-accounts/"):
            account, _, rest = path.removeprefix("instance/service-accounts/").partition("/")
            if account in ("default", self.email):
                if rest == "" and request.query.get("recursive") == "true":
                    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
                    info = {"email": self.email, "aliases": ["default"], "scopes": scopes}
                    return web.json_response(info, headers=self._headers())
                if rest == "token":
                    body = {"access_token": self.token, "expires_in": 3599, "token_type": "Bearer"}
                    return web.json_response(body, headers=self._headers())
                if rest == "email":
                    return web.Response(text=self.email, headers=self._headers())
        if path in self.values:
            return web.Response(text=self.values[path], content_type="application/text", headers=self._headers())
        return web.Response(status=404, text="not found", headers=self._headers())


@pytest.fixture
async def metadata() -> AsyncIterator[FakeMetadataServer]:
    server = await FakeMetadataServer().start()
    yield server
    await server.stop()


async def test_everything_from_the_metadata_server(metadata: FakeMetadataServer) -> None:
    driver = await create_driver(DriverSettings(), metadata_host=metadata.host)
    assert driver.describe() == {
        "cloud": "gcp",
        "cluster_name": "prod",
        "artifact_bucket": "gs://acme-ml-substratus-artifacts",
        "registry_url": "us-central1-docker.pkg.dev/acme-ml/substratus",
        "principal": "substratus@acme-ml.iam.gserviceaccount.com",
        "workload_principal": "substratus-{namespace}@acme-ml.iam.gserviceaccount.com",
        "project_id": "acme-ml",
        "cluster_location": "us-central1-a",
    }
    assert set(metadata.requests) == set(GKE)


async def test_gce_metadata_host_from_the_environment(metadata: FakeMetadataServer) -> None:
    driver = await create_driver(DriverSettings(env={"GCE_METADATA_HOST": metadata.host}))
    assert driver.cluster_name == "prod"


async def test_settings_win_over_metadata_which_is_asked_only_for_what_is_missing(
    metadata: FakeMetadataServer,
) -> None:
    settings = DriverSettings(cluster_name="staging", env={"CLUSTER_LOCATION": "europe-west4"})
    driver = await create_driver(settings, metadata_host=metadata.host)
    assert (driver.cluster_name, driver.project_id) == ("staging", "acme-ml")
    assert driver.registry_url == "europe-west4-docker.pkg.dev/acme-ml/substratus"
    assert set(metadata.requests) == {"project/project-id"}


async def test_nothing_missing_means_no_metadata_request(metadata: FakeMetadataServer) -> None:
    settings = DriverSettings(cluster_name="c", registry_url="r.test/x", env={"PROJECT_ID": "p"})
    driver = await create_driver(settings, metadata_host=metadata.host)
    assert driver.cluster_location == ""
    assert metadata.requests == Counter()


async def test_a_given_registry_makes_the_location_unnecessary(metadata: FakeMetadataServer) -> None:
    del metadata.values["instance/attributes/cluster-location"]
    driver = await create_driver(DriverSettings(registry_url="r.test/x"), metadata_host=metadata.host)
    assert driver.registry_url == "r.test/x"
    assert "instance/attributes/cluster-location" not in metadata.requests


async def test_missing_values_name_flag_and_variable(metadata: FakeMetadataServer) -> None:
    metadata.values = {"project/project-id": "acme-ml"}
    with pytest.raises(CloudConfigError) as info:
        await create_driver(DriverSettings(), metadata_host=metadata.host)
    message = str(info.value)
    assert "--cluster-name/CLUSTER_NAME is required for the gcp cloud (not found in the GCE metadata either)" in message
    assert "--registry-url/REGISTRY_URL or CLUSTER_LOCATION" in message
    assert "PROJECT_ID" not in message


async def test_missing_project_is_reported_with_the_others(metadata: FakeMetadataServer) -> None:
    metadata.values = {}
    with pytest.raises(CloudConfigError) as info:
        await create_driver(DriverSettings(), metadata_host=metadata.host)
    assert str(info.value) == (
        "--cluster-name/CLUSTER_NAME is required for the gcp cloud (not found in the GCE metadata either); "
        "PROJECT_ID is required for the gcp cloud (not found in the GCE metadata either)"
    )


async def test_a_location_with_one_dash_part_is_a_clear_error(metadata: FakeMetadataServer) -> None:
    metadata.values["instance/attributes/cluster-location"] = "uscentral1"
    with pytest.raises(CloudConfigError, match=r"CLUSTER_LOCATION 'uscentral1' is not a GCP region or zone"):
        await create_driver(DriverSettings(), metadata_host=metadata.host)


async def test_an_invalid_bucket_url_is_named(metadata: FakeMetadataServer) -> None:
    with pytest.raises(CloudConfigError, match=r"--artifact-bucket-url/ARTIFACT_BUCKET_URL.*gs://"):
        await create_driver(DriverSettings(artifact_bucket_url="s3://b"), metadata_host=metadata.host)
    with pytest.raises(CloudConfigError, match=r"--artifact-bucket-url/ARTIFACT_BUCKET_URL: .*no bucket name"):
        await create_driver(DriverSettings(artifact_bucket_url="gs://"), metadata_host=metadata.host)


async def test_requests_carry_the_metadata_flavor_header(metadata: FakeMetadataServer) -> None:
    """The fake answers 403 without the header, like the real server: values found prove it was sent."""
    values, unreachable = await read_metadata(metadata.host, ["project_id", "cluster_name"])
    assert (values, unreachable) == ({"project_id": "acme-ml", "cluster_name": "prod"}, None)


async def test_a_server_without_the_flavor_header_is_not_the_metadata_server(metadata: FakeMetadataServer) -> None:
    metadata.flavor = False
    with pytest.raises(CloudConfigError) as info:
        await create_driver(DriverSettings(), metadata_host=metadata.host)
    assert f"the GCE metadata server {metadata.host} is not reachable" in str(info.value)
    assert "without the header Metadata-Flavor: Google" in str(info.value)


async def test_unreachable_metadata_falls_back_fast() -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    driver = await create_driver(
        DriverSettings(cluster_name="c", registry_url="r", env={"PROJECT_ID": "p"}), metadata_host=host
    )
    assert driver.project_id == "p"
    with pytest.raises(CloudConfigError) as info:
        await create_driver(DriverSettings(), metadata_host=host)
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert f"--cluster-name/CLUSTER_NAME is required for the gcp cloud (and the GCE metadata server {host}" in message
    assert "PROJECT_ID is required" in message


async def test_a_hanging_metadata_server_costs_about_a_second(metadata: FakeMetadataServer) -> None:
    metadata.delay = 10
    started = time.monotonic()
    with pytest.raises(CloudConfigError, match=r"no answer within 1 s"):
        await create_driver(DriverSettings(), metadata_host=metadata.host)
    assert time.monotonic() - started < 2.5
