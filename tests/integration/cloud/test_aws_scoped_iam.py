"""The aws driver's per-namespace permission policy, enforced: moto in server mode with IAM authorization on.

A namespace's workloads act as their own role, whose permission policy is `AWSDriver.namespace_permissions`.
Here the policy is attached to an IAM user of moto (moto evaluates the Action and Resource of a user's
policies on every S3 object request once authorization is on: `/moto-api/reset-auth`), and that user's
keys then read and write objects through the driver's own paths. Covered: a namespace reaches its own
prefix and nothing else (another namespace's prefix, a namespace whose name extends its own, the bucket
root). Not covered, because moto does not evaluate them: the `s3:prefix` condition of ListBucket and the
ECR statements (their patterns are checked in the unit tier, tests/unit/cloud/test_workload_identity.py).
Tier: integration (fast), no network beyond loopback.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from substratus_controller.cloud.aws import AWSDriver
from substratus_controller.cloud.base import BucketURL
from substratus_controller.constants import Kind
from tests.integration.cloud.test_aws_moto import ACCOUNT, ISSUER, PRINCIPAL, REGION, moto_server

pytestmark = pytest.mark.integration

BUCKET = "scoped-artifacts"
NAMESPACES = ("team", "team-a", "a")


@pytest.fixture(scope="module")
def moto_auth() -> Iterator[str]:
    """A moto server of its own (authorization is process-wide), with dummy root credentials."""
    with moto_server({"AWS_ACCESS_KEY_ID": "AKIDROOT", "AWS_SECRET_ACCESS_KEY": "root-secret"}) as url:
        yield url


def client(url: str, service: str, key: str = "AKIDROOT", secret: str = "root-secret") -> Any:
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    return boto3.client(service, region_name=REGION, endpoint_url=url, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=config)  # fmt: skip


def authorization(url: str, *, on: bool) -> None:
    body = b"0" if on else b"inf"
    # text/plain: a form content type would make moto's Flask app consume the body before it reads it.
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth", method="POST", data=body, headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def driver() -> AWSDriver:
    return AWSDriver(
        cluster_name="prod",
        artifact_bucket=BucketURL.parse(f"s3://{BUCKET}/substratus"),
        registry_url=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/substratus",
        principal=PRINCIPAL,
        region=REGION,
        oidc_provider=ISSUER,
    )


@pytest.fixture(scope="module")
def keys(moto_auth: str) -> Iterator[dict[str, tuple[str, str]]]:
    """Per namespace, the keys of a user holding exactly that namespace's permission policy; a seeded
    object in each namespace's prefix and one at the bucket root. Authorization is on while tests run."""
    authorization(moto_auth, on=False)
    d = driver()
    s3, iam = client(moto_auth, "s3"), client(moto_auth, "iam")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="substratus/root-secret.txt", Body=b"root")
    out = {}
    for ns in NAMESPACES:
        url = d.artifact_url(Kind.MODEL, ns, "llama").join("artifacts", "weights.bin")
        s3.put_object(Bucket=BUCKET, Key=url.path, Body=ns.encode())
        user = f"workloads-{ns}"
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user, PolicyName="substratus", PolicyDocument=json.dumps(d.namespace_permissions(ns))
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        out[ns] = (key["AccessKeyId"], key["SecretAccessKey"])
    authorization(moto_auth, on=True)
    try:
        yield out
    finally:
        authorization(moto_auth, on=False)


def code(call: Any, **kwargs: Any) -> str:
    try:
        call(**kwargs)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def key_of(namespace: str, name: str = "llama") -> str:
    return driver().artifact_url(Kind.MODEL, namespace, name).join("artifacts", "weights.bin").path


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_a_namespace_reads_and_writes_its_own_prefix(
    moto_auth: str, keys: dict[str, tuple[str, str]], namespace: str
) -> None:
    s3 = client(moto_auth, "s3", *keys[namespace])
    assert s3.get_object(Bucket=BUCKET, Key=key_of(namespace))["Body"].read() == namespace.encode()
    assert code(s3.put_object, Bucket=BUCKET, Key=key_of(namespace, "new"), Body=b"x") == "ok"
    upload = driver().upload_url(Kind.MODEL, namespace, "new", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    assert code(s3.put_object, Bucket=BUCKET, Key=upload.path, Body=b"hello world") == "ok"


@pytest.mark.parametrize(
    ("namespace", "other"),
    [("team", "team-a"), ("team-a", "team"), ("a", "team-a"), ("team-a", "a")],
)
def test_a_namespace_cannot_touch_another_namespace(
    moto_auth: str, keys: dict[str, tuple[str, str]], namespace: str, other: str
) -> None:
    s3 = client(moto_auth, "s3", *keys[namespace])
    assert code(s3.get_object, Bucket=BUCKET, Key=key_of(other)) == "AccessDenied"
    assert code(s3.put_object, Bucket=BUCKET, Key=key_of(other), Body=b"overwritten") == "AccessDenied"
    assert code(s3.delete_object, Bucket=BUCKET, Key=key_of(other)) == "AccessDenied"
    root = client(moto_auth, "s3")
    authorization(moto_auth, on=False)
    try:
        assert root.get_object(Bucket=BUCKET, Key=key_of(other))["Body"].read() == other.encode()
    finally:
        authorization(moto_auth, on=True)


def test_a_namespace_cannot_reach_the_bucket_outside_the_namespace_prefixes(
    moto_auth: str, keys: dict[str, tuple[str, str]]
) -> None:
    s3 = client(moto_auth, "s3", *keys["team"])
    assert code(s3.get_object, Bucket=BUCKET, Key="substratus/root-secret.txt") == "AccessDenied"
    assert code(s3.put_object, Bucket=BUCKET, Key="substratus/clusters/prod/namespaces/x", Body=b"") == "AccessDenied"
    other_cluster = "substratus/clusters/staging/namespaces/team/abc/artifacts/weights.bin"
    assert code(s3.put_object, Bucket=BUCKET, Key=other_cluster, Body=b"") == "AccessDenied"
