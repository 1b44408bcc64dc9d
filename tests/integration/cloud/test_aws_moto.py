"""The aws driver's effects against moto in server mode (a real `moto.server` process on loopback): S3 presigned
upload + HeadObject md5, IAM trust policies for IRSA, STS and EKS auto-configuration.

moto does not verify SigV4 signatures of presigned URLs, nor Content-MD5 against the body (a PUT of any body
to any presigned URL is stored, checked with moto 5.2). So the S3 tests reach moto through `S3Gate`, a small
loopback proxy that does what S3 does before it stores a presigned PUT, written from the SigV4 specification
independently of botocore: recompute the query-string signature over the signed headers (403
SignatureDoesNotMatch), refuse expired URLs (403 AccessDenied), and compare Content-MD5 with the body
(400 BadDigest). Everything it accepts, and every other request, is forwarded to moto unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import boto3
import pytest
from botocore.config import Config

from substratus_controller.cloud.aws import AWSDriver, create_driver, statement_id
from substratus_controller.cloud.base import BucketURL, CloudConfigError, DriverSettings, StorageError
from substratus_controller.constants import Kind

REGION = "us-west-2"
ACCOUNT = "123456789012"  # moto's default account
ACCESS_KEY = "AKIDMOTOTESTING"
SECRET_KEY = "moto-testing-secret-key"
BUCKET = "substratus-test-artifacts"
ISSUER = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
ROLE = "substratus"
PRINCIPAL = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
EC2_TRUST = {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def moto_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """A moto server process on a free loopback port, with `env` added to ours; its URL. Stopped by pid."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/moto-api/")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def aws_credentials() -> Iterator[None]:
    """Static dummy credentials for boto3's default chain, nothing read from the machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="module")
def moto(aws_credentials: None) -> Iterator[str]:
    """A moto server process on a free loopback port; its URL."""
    try:
        import moto.server  # noqa: F401 - only checks that moto[server] is installed
    except ImportError:
        pytest.fail("moto[server] is not installed: .venv/bin/pip install -e '.[dev]'")
    with moto_server({"MOTO_ALLOW_NONEXISTENT_REGION": "false"}) as url:
        yield url


@pytest.fixture(autouse=True)
def reset_moto(moto: str) -> None:
    request = urllib.request.Request(f"{moto}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10):
        pass


def direct(moto: str, service: str) -> Any:
    """A boto3 client talking straight to moto (test setup and inspection)."""
    config = Config(s3={"addressing_style": "path"}) if service == "s3" else None
    return boto3.client(service, region_name=REGION, endpoint_url=moto, config=config)


# ------------------------------------------------------------------------------------------- S3 gate
def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def check_presigned(method: str, raw_path: str, headers: Any, body: bytes, now: datetime) -> tuple[int, str] | None:
    """What S3 answers a presigned request before storing it: None when it would accept it, else
    (status, error code). SigV4 query-string authentication, computed from the specification."""
    parts = urlsplit(raw_path)
    params = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(params)
    if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return 400, "AuthorizationQueryParametersError"
    credential = query.get("X-Amz-Credential", "")
    access_key, _, scope = credential.partition("/")
    if access_key != ACCESS_KEY:
        return 403, "InvalidAccessKeyId"
    amz_date = query.get("X-Amz-Date", "")
    expires = int(query.get("X-Amz-Expires", "0"))
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (now - signed_at).total_seconds() > expires:
        return 403, "AccessDenied"  # "Request has expired"
    signed_headers = query.get("X-Amz-SignedHeaders", "").split(";")
    canonical_headers = ""
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            return 403, "SignatureDoesNotMatch"
        canonical_headers += f"{name}:{' '.join(value.strip().split())}\n"
    canonical_query = "&".join(
        f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(params) if k != "X-Amz-Signature"
    )
    canonical_request = "\n".join(
        [method, parts.path, canonical_query, canonical_headers, ";".join(signed_headers), "UNSIGNED-PAYLOAD"]
    )
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{SECRET_KEY}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, query.get("X-Amz-Signature", "")):
        return 403, "SignatureDoesNotMatch"
    content_md5 = headers.get("Content-MD5")
    if content_md5 is not None:
        try:
            digest = base64.b64decode(content_md5, validate=True)
        except ValueError:
            return 400, "InvalidDigest"
        if digest != hashlib.md5(body).digest():
            return 400, "BadDigest"
    return None


class S3Gate(http.server.ThreadingHTTPServer):
    """Loopback proxy in front of moto that enforces S3's presigned-PUT checks (`check_presigned`)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _GateHandler)
        self.upstream = upstream
        self.clock_offset = 0.0  # seconds added to "now" (to test expiry)
        self.rejected: list[str] = []  # error codes of the presigned requests refused
        self.accepted = 0  # presigned requests that passed the checks

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _GateHandler(http.server.BaseHTTPRequestHandler):
    server: S3Gate
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_PUT(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if "X-Amz-Signature=" in self.path:
            now = datetime.now(UTC).timestamp() + self.server.clock_offset
            verdict = check_presigned(self.command, self.path, self.headers, body, datetime.fromtimestamp(now, UTC))
            if verdict is not None:
                status, code = verdict
                self.server.rejected.append(code)
                payload = f"<Error><Code>{code}</Code></Error>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.server.accepted += 1
        forwarded = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        request = urllib.request.Request(
            self.server.upstream + self.path,
            data=body if self.command in ("PUT", "POST") else None,
            method=self.command,
            headers=forwarded,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, reply_headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, reply_headers, payload = exc.code, exc.headers, exc.read()
        self.send_response(status)
        for name, value in reply_headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(name, value)
        self.send_header(
            "Content-Length", str(len(payload) if self.command != "HEAD" else reply_headers.get("Content-Length", "0"))
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


@pytest.fixture(scope="module")
def gate(moto: str) -> Iterator[S3Gate]:
    server = S3Gate(moto)
    thread = threading.Thread(target=server.serve_forever, name="s3-gate", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def reset_gate(request: pytest.FixtureRequest) -> None:
    if "gate" in request.fixturenames:
        g: S3Gate = request.getfixturevalue("gate")
        g.clock_offset = 0.0
        g.rejected.clear()
        g.accepted = 0


def make_driver(endpoint: str, *, bucket: str = f"s3://{BUCKET}/base") -> AWSDriver:
    return AWSDriver(
        cluster_name="my-cluster",
        artifact_bucket=BucketURL.parse(bucket),
        registry_url=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/substratus",
        principal=PRINCIPAL,
        region=REGION,
        oidc_provider=ISSUER,
        endpoint_url=endpoint,
    )


@pytest.fixture
def s3_driver(gate: S3Gate, moto: str) -> AWSDriver:
    direct(moto, "s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return make_driver(gate.url)


async def put(url: str, body: bytes, *, md5: bytes, content_type: str = "application/octet-stream") -> int:
    headers = {"Content-Type": content_type, "Content-MD5": base64.b64encode(md5).decode()}
    async with aiohttp.ClientSession() as session, session.put(url, data=body, headers=headers) as response:
        await response.read()
        return response.status


def stored(moto: str, key: str) -> bytes | None:
    s3 = direct(moto, "s3")
    try:
        return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


BODY = b"a tarball of a build context\n" * 100
BODY_MD5 = hashlib.md5(BODY).digest()


# ------------------------------------------------------------------------------------------- uploads
async def test_presigned_put_with_the_signed_md5_is_stored(s3_driver: AWSDriver, moto: str, gate: S3Gate) -> None:
    url = s3_driver.upload_url(Kind.MODEL, "ns1", "m1", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    signed = await s3_driver.signed_upload_url(url, md5_hex=BODY_MD5.hex())
    assert signed.startswith(f"{gate.url}/{BUCKET}/{url.path}?")
    assert await put(signed, BODY, md5=BODY_MD5) == 200
    assert (gate.accepted, gate.rejected) == (1, [])  # signature, expiry and body md5 verified
    assert stored(moto, url.path) == BODY
    assert await s3_driver.object_md5(url) == BODY_MD5.hex()  # the ETag, quotes stripped


async def test_a_body_that_does_not_match_the_signed_md5_is_rejected(
    s3_driver: AWSDriver, moto: str, gate: S3Gate
) -> None:
    url = s3_driver.upload_url(Kind.MODEL, "ns1", "m1", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    signed = await s3_driver.signed_upload_url(url, md5_hex=BODY_MD5.hex())
    assert await put(signed, b"something else", md5=BODY_MD5) == 400
    assert gate.rejected == ["BadDigest"]
    assert stored(moto, url.path) is None
    assert await s3_driver.object_md5(url) is None


async def test_the_signed_md5_and_content_type_cannot_be_swapped(s3_driver: AWSDriver, moto: str, gate: S3Gate) -> None:
    url = s3_driver.upload_url(Kind.MODEL, "ns1", "m1", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    signed = await s3_driver.signed_upload_url(url, md5_hex=BODY_MD5.hex())
    other = b"something else"
    assert await put(signed, other, md5=hashlib.md5(other).digest()) == 403
    assert await put(signed, BODY, md5=BODY_MD5, content_type="text/plain") == 403
    assert gate.rejected == ["SignatureDoesNotMatch", "SignatureDoesNotMatch"]
    assert stored(moto, url.path) is None


async def test_urls_expire_after_at_most_300_seconds(s3_driver: AWSDriver, gate: S3Gate) -> None:
    url = s3_driver.upload_url(Kind.MODEL, "ns1", "m1", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    signed = await s3_driver.signed_upload_url(url, md5_hex=BODY_MD5.hex(), expires_in=3600)
    assert dict(parse_qsl(urlsplit(signed).query))["X-Amz-Expires"] == "300"
    gate.clock_offset = 305
    assert await put(signed, BODY, md5=BODY_MD5) == 403
    assert gate.rejected == ["AccessDenied"]
    gate.clock_offset = 0
    assert await put(signed, BODY, md5=BODY_MD5) == 200


async def test_object_md5_of_a_missing_object_is_none(s3_driver: AWSDriver) -> None:
    assert (
        await s3_driver.object_md5(
            s3_driver.upload_url(Kind.MODEL, "ns1", "never-uploaded", "5eb63bbbe01eeed093cb22bb8f5acdc3")
        )
        is None
    )


async def test_object_md5_of_a_multipart_upload_uses_the_md5_metadata(s3_driver: AWSDriver, moto: str) -> None:
    s3 = direct(moto, "s3")
    md5 = hashlib.md5(BODY).hexdigest()
    for key, metadata in (("base/with-md5", {"md5": md5}), ("base/without", {})):
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, Metadata=metadata)
        part = s3.upload_part(Bucket=BUCKET, Key=key, PartNumber=1, UploadId=upload["UploadId"], Body=BODY)
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        assert s3.head_object(Bucket=BUCKET, Key=key)["ETag"].endswith('-1"')
    assert await s3_driver.object_md5(BucketURL("s3", BUCKET, "base/with-md5")) == md5
    assert await s3_driver.object_md5(BucketURL("s3", BUCKET, "base/without")) is None


async def test_storage_errors_are_storage_errors(moto: str) -> None:
    driver = make_driver(moto)  # no such bucket: HeadObject 404 is "no object"; PutObject fails
    assert await driver.object_md5(BucketURL("s3", BUCKET, "base/x")) is None
    with pytest.raises(StorageError, match="creating the artifact directories: PutObject failed: NoSuchBucket"):
        await driver.prepare_artifacts(BucketURL("s3", BUCKET, "base/x"), ["artifacts"])


async def test_prepare_artifacts_creates_directory_markers(s3_driver: AWSDriver, moto: str) -> None:
    url = s3_driver.artifact_url(Kind.MODEL, "ns1", "m1")
    await s3_driver.prepare_artifacts(url, ["artifacts"])
    await s3_driver.prepare_artifacts(url, ["artifacts"])  # idempotent
    keys = [o["Key"] for o in direct(moto, "s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [f"{url.path}/artifacts/"]


# ------------------------------------------------------------------------------------------- IRSA
NAMESPACES = ("ns1", "ns2", "ns", "team-a")
CONTROLLER_TRUST = {"Version": "2012-10-17", "Statement": [EC2_TRUST]}


@pytest.fixture
def iam(moto: str) -> Any:
    """The controller's role and one role per namespace, each trusting only EC2 to begin with."""
    client = direct(moto, "iam")
    for name in (ROLE, *(f"{ROLE}-{ns}" for ns in NAMESPACES)):
        client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(CONTROLLER_TRUST))
    return client


def trust(iam: Any, namespace: str | None = None) -> dict[str, Any]:
    """The trust policy of the namespace's role (of the controller's role without a namespace)."""
    name = ROLE if namespace is None else f"{ROLE}-{namespace}"
    document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    return document if isinstance(document, dict) else json.loads(document)


def count_updates(driver: AWSDriver) -> list[str]:
    calls: list[str] = []
    driver.client("iam").meta.events.register(
        "before-call.iam.UpdateAssumeRolePolicy", lambda **kwargs: calls.append("update")
    )
    return calls


def subjects(document: dict[str, Any]) -> list[str]:
    own = next(
        s
        for s in document["Statement"]
        if s.get("Sid") == statement_id(f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}")
    )
    return list(own["Condition"]["StringEquals"][f"{ISSUER}:sub"])


async def test_bind_identity_trusts_the_namespace_role_only_and_keeps_other_statements(iam: Any, moto: str) -> None:
    driver = make_driver(moto)
    updates = count_updates(driver)
    await driver.bind_identity(service_account="modeller", namespace="ns1")
    after = trust(iam, "ns1")
    assert after["Statement"][0] == EC2_TRUST
    assert after["Statement"][1] == {
        "Sid": statement_id(driver.provider_arn),
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{ISSUER}:aud": "sts.amazonaws.com",
                f"{ISSUER}:sub": ["system:serviceaccount:ns1:modeller"],
            }
        },
    }
    assert updates == ["update"]

    await driver.bind_identity(service_account="modeller", namespace="ns1")  # bound: no write
    assert updates == ["update"]
    assert trust(iam, "ns1") == after

    # A second ServiceAccount of the namespace joins the first (upstream overwrote the first binding).
    await driver.bind_identity(service_account="notebook", namespace="ns1")
    assert subjects(trust(iam, "ns1")) == ["system:serviceaccount:ns1:modeller", "system:serviceaccount:ns1:notebook"]
    # Another namespace gets its own role; neither the first namespace's nor the controller's changes.
    before = trust(iam, "ns1")
    await driver.bind_identity(service_account="notebook", namespace="ns2")
    assert subjects(trust(iam, "ns2")) == ["system:serviceaccount:ns2:notebook"]
    assert trust(iam, "ns1") == before
    assert trust(iam) == CONTROLLER_TRUST


async def test_unbind_identity_removes_the_namespace_subjects_and_then_the_statement(iam: Any, moto: str) -> None:
    driver = make_driver(moto)
    for sa in ("a", "b"):
        await driver.bind_identity(service_account=sa, namespace="ns")
    await driver.bind_identity(service_account="a", namespace="ns1")
    other = trust(iam, "ns1")
    await driver.unbind_identity(service_accounts=["a"], namespace="ns")
    assert subjects(trust(iam, "ns")) == ["system:serviceaccount:ns:b"]
    await driver.unbind_identity(service_accounts=["b", "never-bound"], namespace="ns")
    assert trust(iam, "ns") == CONTROLLER_TRUST  # the own statement is gone, EC2's kept
    assert trust(iam, "ns1") == other
    # A process that starts after the unbind does not bring the subjects back with its next bind.
    restarted = make_driver(moto)
    await restarted.bind_identity(service_account="c", namespace="ns")
    assert subjects(trust(iam, "ns")) == ["system:serviceaccount:ns:c"]
    updates = count_updates(driver)
    await driver.unbind_identity(service_accounts=["a"], namespace="ns")  # nothing of it left: no write
    assert updates == []


async def test_bind_identity_keeps_bindings_made_by_an_earlier_process(iam: Any, moto: str) -> None:
    await make_driver(moto).bind_identity(service_account="a", namespace="ns")
    restarted = make_driver(moto)
    await restarted.bind_identity(service_account="b", namespace="ns")
    assert subjects(trust(iam, "ns")) == ["system:serviceaccount:ns:a", "system:serviceaccount:ns:b"]


async def test_bind_identity_writes_nothing_when_another_statement_already_trusts(iam: Any, moto: str) -> None:
    existing = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {f"{ISSUER}:sub": "system:serviceaccount:team-*:*"}},
    }
    document = {"Version": "2012-10-17", "Statement": [EC2_TRUST, existing]}
    iam.update_assume_role_policy(RoleName=f"{ROLE}-team-a", PolicyDocument=json.dumps(document))
    driver = make_driver(moto)
    updates = count_updates(driver)
    await driver.bind_identity(service_account="modeller", namespace="team-a")
    assert updates == []
    assert trust(iam, "team-a") == document


async def test_concurrent_binds_all_land(iam: Any, moto: str) -> None:
    driver = make_driver(moto)
    names = [f"sa-{i}" for i in range(6)]
    await asyncio.gather(*(driver.bind_identity(service_account=n, namespace="ns") for n in names))
    assert subjects(trust(iam, "ns")) == [f"system:serviceaccount:ns:{n}" for n in names]
    assert len(trust(iam, "ns")["Statement"]) == 2


async def test_bind_identity_to_a_missing_role_is_a_storage_error(moto: str) -> None:
    with pytest.raises(StorageError, match="to IAM role substratus-ns1: GetRole failed: NoSuchEntity"):
        await make_driver(moto).bind_identity(service_account="modeller", namespace="ns1")


# ------------------------------------------------------------------------------------------- create_driver
async def test_defaults_come_from_the_sts_account(moto: str) -> None:
    driver = await create_driver(
        DriverSettings(
            cluster_name="my-cluster",
            env={"AWS_REGION": REGION, "AWS_ENDPOINT_URL": moto, "AWS_OIDC_PROVIDER": ISSUER},
        )
    )
    assert driver.registry_url == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/substratus"
    assert str(driver.artifact_bucket) == f"s3://{ACCOUNT}-substratus-artifacts"
    assert driver.principal == f"arn:aws:iam::{ACCOUNT}:role/substratus"
    assert driver.describe()["cloud"] == "aws"


async def test_the_oidc_provider_comes_from_eks_describe_cluster(moto: str) -> None:
    eks = direct(moto, "eks")
    cluster = eks.create_cluster(
        name="my-cluster",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
        resourcesVpcConfig={"subnetIds": []},
    )["cluster"]
    issuer = cluster["identity"]["oidc"]["issuer"]
    assert issuer.startswith("https://oidc.eks.us-west-2.amazonaws.com/id/")
    driver = await create_driver(
        DriverSettings(cluster_name="my-cluster", env={"AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto})
    )
    assert driver.oidc_provider == issuer.removeprefix("https://")
    assert driver.provider_arn == f"arn:aws:iam::{ACCOUNT}:oidc-provider/{driver.oidc_provider}"


async def test_an_unknown_cluster_is_a_clear_config_error(moto: str) -> None:
    with pytest.raises(CloudConfigError, match=r"AWS_OIDC_PROVIDER is not set and looking it up failed") as info:
        await create_driver(DriverSettings(cluster_name="nope", env={"AWS_REGION": REGION, "AWS_ENDPOINT_URL": moto}))
    assert "ResourceNotFoundException" in str(info.value)
    assert "set AWS_OIDC_PROVIDER to the OIDC issuer of EKS cluster 'nope'" in str(info.value)


async def test_prepare_image_creates_the_ecr_repository_once(moto: str) -> None:
    """ECR needs a repository before Kaniko can push; creating it twice is fine; foreign registries are left alone."""
    driver = make_driver(moto)
    image = f"{driver.registry_url}/cl-model-ns-m:0123456789abcdef0123456789abcdef"
    repo = driver.repository(image)
    assert repo is not None
    assert repo.endswith("/cl-model-ns-m")
    await driver.prepare_image(image)
    await driver.prepare_image(image)  # idempotent
    repos = driver.client("ecr").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repos].count(repo) == 1
    assert driver.repository("docker.io/library/python:3.11") is None
    await driver.prepare_image("docker.io/library/python:3.11")  # not ours: nothing to do
