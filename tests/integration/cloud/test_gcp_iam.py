"""The gcp driver's IAM calls against a real HTTP server on loopback with IAM's semantics.

`FakeIAMServer` implements, for `/v1/projects/-/serviceAccounts/<email>:<method>`:
- `getIamPolicy` / `setIamPolicy` of the IAM API: policies with an etag; a write with a stale etag gets
  409 ABORTED, like IAM; every request needs the bearer token.
- `signBlob` of the IAM Credentials API: RSA-SHA256 with a key the server holds, for one service account.

Covered: Workload Identity binding (added once, never written twice, a concurrent change retried once),
and signing without a private key (GKE Workload Identity), both in process and end to end in a
subprocess whose Application Default Credentials come from a fake GCE metadata server, exactly as google-auth
finds them on GKE. Not covered (no server here can stand in for it): that real IAM accepts the requests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.oauth2.credentials import Credentials

from substratus_controller.cloud.base import BucketURL, StorageError
from substratus_controller.cloud.gcp import GCPDriver
from substratus_controller.jsontypes import JSON
from substratus_controller.testing import free_port
from tests.integration.cloud.test_gcp_metadata import FakeMetadataServer
from tests.unit.cloud.test_gcp_signing import make_key, verify_v4_put

pytestmark = pytest.mark.integration

TOKEN = "ya29.test-access-token"
PRINCIPAL = "substratus@acme-ml.iam.gserviceaccount.com"
ROLE = "roles/iam.workloadIdentityUser"


def member(namespace: str, ksa: str) -> str:
    return f"serviceAccount:acme-ml.svc.id.goog[{namespace}/{ksa}]"


class FakeIAMServer:
    def __init__(self, *, signer_email: str, key: rsa.RSAPrivateKey, token: str = TOKEN) -> None:
        self.signer_email, self.key, self.token = signer_email, key, token
        self.policies: dict[str, JSON] = {}
        self.calls: Counter[str] = Counter()
        self.conflicts = 0
        self.before_set: Callable[[str], None] | None = None  # simulates another writer
        self.forbid: set[str] = set()  # methods answered with 403
        self.queries: list[dict[str, str]] = []
        self._etag = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeIAMServer:
        app = web.Application()
        app.router.add_post("/v1/projects/-/serviceAccounts/{target}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def next_etag(self) -> str:
        self._etag += 1
        return base64.b64encode(f"etag-{self._etag}".encode()).decode()

    def policy(self, email: str) -> JSON:
        return self.policies.setdefault(email, {"version": 1, "etag": self.next_etag(), "bindings": []})

    def write(self, email: str, bindings: list[JSON]) -> None:
        """Another writer changes the policy (new etag)."""
        self.policies[email] = {**self.policy(email), "bindings": bindings, "etag": self.next_etag()}

    @staticmethod
    def error(status: int, reason: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": status, "status": reason, "message": message}}, status=status)

    async def _handle(self, request: web.Request) -> web.Response:
        email, _, method = request.match_info["target"].rpartition(":")
        self.calls[method] += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if method in self.forbid:
            return self.error(403, "PERMISSION_DENIED", f"Permission denied on {method} for {email}")
        if method == "getIamPolicy":
            self.queries.append(dict(request.query))
            return web.json_response(self.policy(email))
        if method == "setIamPolicy":
            new = (await request.json())["policy"]
            if self.before_set is not None:
                self.before_set(email)
            if new.get("etag") != self.policy(email)["etag"]:
                self.conflicts += 1
                return self.error(409, "ABORTED", "There were concurrent policy changes. Please retry the whole "
                                  "read-modify-write with exponential backoff.")  # fmt: skip
            self.policies[email] = {**new, "etag": self.next_etag()}
            return web.json_response(self.policies[email])
        if method == "signBlob":
            if email != self.signer_email:
                return self.error(403, "PERMISSION_DENIED", f"cannot sign as {email}")
            payload = base64.b64decode((await request.json())["payload"])
            signature = self.key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
            return web.json_response({"keyId": "k1", "signedBlob": base64.b64encode(signature).decode()})
        return self.error(404, "NOT_FOUND", method)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return make_key()


@pytest.fixture
async def iam(key: rsa.RSAPrivateKey) -> AsyncIterator[FakeIAMServer]:
    server = await FakeIAMServer(signer_email=PRINCIPAL, key=key).start()
    yield server
    await server.stop()


def driver(iam: FakeIAMServer, token: str = TOKEN) -> GCPDriver:
    """A driver whose credentials hold only an access token (no key), as on GKE."""
    return GCPDriver(
        cluster_name="prod",
        artifact_bucket=BucketURL.parse("gs://acme-ml-substratus-artifacts"),
        registry_url="us-central1-docker.pkg.dev/acme-ml/substratus",
        principal=PRINCIPAL,
        project_id="acme-ml",
        iam_endpoint=iam.url,
        iam_credentials_endpoint=iam.url,
        credentials=Credentials(token=token),  # type: ignore[no-untyped-call]
        call_timeout=10,
    )


def ns_principal(namespace: str) -> str:
    """The default workload principal of a namespace (the driver's template)."""
    return f"substratus-{namespace}@acme-ml.iam.gserviceaccount.com"


RESEARCH = ns_principal("research")


def wi_members(iam: FakeIAMServer, principal: str = RESEARCH) -> list[str]:
    bindings = [b for b in iam.policy(principal)["bindings"] if b["role"] == ROLE and "condition" not in b]
    return [m for b in bindings for m in b["members"]]


async def test_binding_is_added_once_and_never_rewritten(iam: FakeIAMServer) -> None:
    gcp = driver(iam)
    await gcp.bind_identity(service_account="modeller", namespace="research")
    assert wi_members(iam) == [member("research", "modeller")]
    assert (iam.calls["getIamPolicy"], iam.calls["setIamPolicy"]) == (1, 1)
    assert PRINCIPAL not in iam.policies  # the controller's own principal is never a workload's
    etag = iam.policy(RESEARCH)["etag"]

    await gcp.bind_identity(service_account="modeller", namespace="research")
    assert (iam.calls["getIamPolicy"], iam.calls["setIamPolicy"]) == (2, 1)
    assert iam.policy(RESEARCH)["etag"] == etag
    assert iam.queries[0] == {"options.requestedPolicyVersion": "3"}


async def test_other_bindings_are_kept(iam: FakeIAMServer) -> None:
    conditional = {"role": ROLE, "members": ["user:ops@acme.test"], "condition": {"title": "t", "expression": "true"}}
    others: list[JSON] = [
        {"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:a@acme.test"]},
        conditional,
    ]
    iam.write(RESEARCH, [*others, {"role": ROLE, "members": [member("other", "notebook")]}])
    await driver(iam).bind_identity(service_account="notebook", namespace="research")
    assert iam.policy(RESEARCH)["bindings"] == [
        *others,
        {"role": ROLE, "members": [member("other", "notebook"), member("research", "notebook")]},
    ]


async def test_a_concurrent_change_is_retried_with_the_new_etag(iam: FakeIAMServer) -> None:
    def other_writer(email: str) -> None:
        iam.before_set = None  # once
        iam.write(email, [{"role": ROLE, "members": [member("other", "server")]}])

    iam.before_set = other_writer
    await driver(iam).bind_identity(service_account="modeller", namespace="research")
    assert iam.conflicts == 1
    assert (iam.calls["getIamPolicy"], iam.calls["setIamPolicy"]) == (2, 2)
    assert wi_members(iam) == [member("other", "server"), member("research", "modeller")]


async def test_a_concurrent_writer_that_added_our_member_means_no_second_write(iam: FakeIAMServer) -> None:
    def other_writer(email: str) -> None:
        iam.before_set = None
        iam.write(email, [{"role": ROLE, "members": [member("research", "modeller")]}])

    iam.before_set = other_writer
    await driver(iam).bind_identity(service_account="modeller", namespace="research")
    assert (iam.calls["getIamPolicy"], iam.calls["setIamPolicy"], iam.conflicts) == (2, 1, 1)
    assert wi_members(iam) == [member("research", "modeller")]


async def test_two_concurrent_bindings_both_land(iam: FakeIAMServer) -> None:
    gcp = driver(iam)
    await asyncio.gather(
        gcp.bind_identity(service_account="modeller", namespace="aaaaaa"),
        gcp.bind_identity(service_account="data-loader", namespace="bbbbbb"),
    )
    assert wi_members(iam, ns_principal("aaaaaa")) == [member("aaaaaa", "modeller")]
    assert wi_members(iam, ns_principal("bbbbbb")) == [member("bbbbbb", "data-loader")]
    assert PRINCIPAL not in iam.policies


async def test_unbinding_removes_only_the_namespace_members(iam: FakeIAMServer) -> None:
    gcp = driver(iam)
    conditional = {"role": ROLE, "members": [member("research", "a")], "condition": {"title": "t", "expression": "x"}}
    token_creator = {"role": "roles/iam.serviceAccountTokenCreator", "members": [member("research", "a")]}
    iam.write(RESEARCH, [token_creator, conditional, {"role": ROLE, "members": [member("elsewhere", "x")]}])
    for sa in ("a", "b"):
        await gcp.bind_identity(service_account=sa, namespace="research")
    await gcp.unbind_identity(service_accounts=["a"], namespace="research")
    assert wi_members(iam) == [member("elsewhere", "x"), member("research", "b")]
    await gcp.unbind_identity(service_accounts=["b", "x"], namespace="research")
    assert iam.policy(RESEARCH)["bindings"] == [
        token_creator,
        conditional,
        {"role": ROLE, "members": [member("elsewhere", "x")]},
    ]
    writes = iam.calls["setIamPolicy"]
    await gcp.unbind_identity(service_accounts=["a", "b"], namespace="research")  # nothing left: no write
    assert iam.calls["setIamPolicy"] == writes


async def test_persistent_conflicts_are_a_storage_error_after_one_retry(iam: FakeIAMServer) -> None:
    def always(email: str) -> None:
        iam.write(email, [])

    iam.before_set = always
    with pytest.raises(StorageError, match=r"binding research/modeller to .*: setIamPolicy: HTTP 409"):
        await driver(iam).bind_identity(service_account="modeller", namespace="research")
    assert iam.calls["setIamPolicy"] == 2


async def test_permission_denied_is_a_storage_error(iam: FakeIAMServer) -> None:
    iam.forbid.add("getIamPolicy")
    with pytest.raises(StorageError, match=r"getIamPolicy: HTTP 403: .*Permission denied"):
        await driver(iam).bind_identity(service_account="modeller", namespace="research")


async def test_a_rejected_token_is_a_storage_error(iam: FakeIAMServer) -> None:
    with pytest.raises(StorageError, match="binding research/modeller"):
        await driver(iam, token="stale").bind_identity(service_account="modeller", namespace="research")


OBJECT = BucketURL.parse("gs://acme-ml-substratus-artifacts/93ea94b18012ca14d84e1468d65e8709/uploads/latest.tar.gz")
MD5 = hashlib.md5(b"tarball", usedforsecurity=False).digest()


async def test_sign_blob_signs_for_credentials_without_a_key(iam: FakeIAMServer, key: rsa.RSAPrivateKey) -> None:
    url = await driver(iam).signed_upload_url(OBJECT, md5_hex=MD5.hex())
    query = verify_v4_put(url, content_md5=base64.b64encode(MD5).decode(), public_key=key.public_key())
    assert query["X-Goog-Credential"].startswith(f"{PRINCIPAL}/")
    assert int(query["X-Goog-Expires"]) == 300
    assert urlsplit(url).netloc == "storage.googleapis.com"
    assert iam.calls["signBlob"] == 1


async def test_sign_blob_refusal_is_a_storage_error_without_a_signature(iam: FakeIAMServer) -> None:
    iam.forbid.add("signBlob")
    with pytest.raises(StorageError) as info:
        await driver(iam).signed_upload_url(OBJECT, md5_hex=MD5.hex())
    message = str(info.value)
    assert f"signing an upload URL for {OBJECT}: IAM signBlob as {PRINCIPAL}: HTTP 403" in message
    assert "Signature" not in message
    assert info.value.__cause__ is None


SCRIPT = """
import asyncio, os, sys
from substratus_controller.cloud.base import DriverSettings
from substratus_controller.cloud.gcp import create_driver
from substratus_controller.constants import Kind

async def main():
    gcp = await create_driver(DriverSettings(env=dict(os.environ)))
    upload = gcp.upload_url(Kind.MODEL, "research", "llama", sys.argv[1])
    url = await gcp.signed_upload_url(upload, md5_hex=sys.argv[1])
    await gcp.bind_identity(service_account="modeller", namespace="research")
    print("RESULT " + json.dumps({"url": url, "settings": gcp.describe()}))

import json
asyncio.run(main())
"""


async def test_workload_identity_end_to_end_in_a_fresh_process(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    """On GKE: settings from the metadata server, Application Default Credentials = the metadata server's
    token for the node's service account, signing through signBlob as that account, binding through IAM."""
    controller = "controller@acme-ml.iam.gserviceaccount.com"
    metadata = await FakeMetadataServer(email=controller, token=TOKEN).start()
    iam = await FakeIAMServer(signer_email=controller, key=key).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_"))}
        env.pop("STORAGE_EMULATOR_HOST", None)
        env.update(
            GCE_METADATA_HOST=metadata.host,
            GCE_METADATA_IP=metadata.host,
            GCP_IAM_ENDPOINT=iam.url,
            GCP_IAM_CREDENTIALS_ENDPOINT=iam.url,
            CLOUDSDK_CONFIG=str(tmp_path),  # no gcloud credentials of whoever runs the tests
            HOME=str(tmp_path),
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SCRIPT, MD5.hex(), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await iam.stop()
        await metadata.stop()
    assert proc.returncode == 0, stderr.decode()[-3000:]
    (line,) = [ln for ln in stdout.decode().splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["settings"]["cluster_name"] == "prod"
    assert result["settings"]["principal"] == PRINCIPAL
    query = verify_v4_put(result["url"], content_md5=base64.b64encode(MD5).decode(), public_key=key.public_key())
    assert query["X-Goog-Credential"].startswith(f"{controller}/")
    assert iam.calls["signBlob"] == 1
    assert wi_members(iam) == [member("research", "modeller")]
    assert (
        metadata.requests["instance/service-accounts/default/token"]
        + metadata.requests[f"instance/service-accounts/{controller}/token"]
        >= 1
    )
    # The signed URL must never reach a log line.
    signature = result["url"].rsplit("X-Goog-Signature=", 1)[1]
    assert signature not in stdout.decode().replace(line, "")
    assert signature not in stderr.decode()
