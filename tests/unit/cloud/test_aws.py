"""The aws driver without AWS: settings, mounts and PersistentVolumes, GPU table, ETag/md5 rules, the IRSA
trust-policy logic, URL signing (local computation) and error redaction.

The effects against an S3/IAM/STS/EKS implementation are in tests/integration/cloud/test_aws_moto.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from substratus_controller.api.v1.types import GPUType
from substratus_controller.cloud.aws import (
    CSI_DRIVER,
    GPU_MEMORY_LABEL,
    GPU_NAME_LABEL,
    MOUNT_CLAIM,
    WEB_IDENTITY_ACTION,
    WORKLOAD_GID,
    WORKLOAD_UID,
    AWSDriver,
    content_md5,
    create_driver,
    md5_from_head,
    redact,
    statement_allows,
    statement_id,
    trust_allows,
    with_trusted_subjects,
)
from substratus_controller.cloud.base import (
    GPU_TOLERATION,
    BucketURL,
    CloudConfigError,
    DriverSettings,
    Mount,
    StorageError,
    UnsupportedGPUError,
)
from substratus_controller.constants import LABEL_MANAGED_BY, MANAGED_BY_VALUE, Kind
from substratus_controller.render import security

REGION = "us-west-2"
ACCOUNT = "123456789012"
PRINCIPAL = f"arn:aws:iam::{ACCOUNT}:role/substratus"
ISSUER = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
HASH = "93ea94b18012ca14d84e1468d65e8709"


def make_driver(bucket: str = "s3://test-artifacts/base", endpoint_url: str | None = None) -> AWSDriver:
    return AWSDriver(
        cluster_name="my-cluster",
        artifact_bucket=BucketURL.parse(bucket),
        registry_url=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/substratus",
        principal=PRINCIPAL,
        region=REGION,
        oidc_provider=f"https://{ISSUER}/",
        endpoint_url=endpoint_url,
    )


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy static credentials for boto3's default chain (nothing read from the machine)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def closed_port() -> str:
    """A loopback URL nothing listens on: any call to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ------------------------------------------------------------------------------------------- mounts
def test_rw_mount_uses_the_namespace_claim_with_a_subpath_relative_to_the_namespace_prefix() -> None:
    d = make_driver()
    url = d.artifact_url(Kind.MODEL, "ns1", "m1")
    assert url.path.startswith("base/clusters/my-cluster/namespaces/ns1/")
    vol = d.mount_bucket(url, volume_name="artifacts", mounts=[Mount("artifacts", "/content/artifacts", False)])
    assert vol.volumes == [{"name": MOUNT_CLAIM, "persistentVolumeClaim": {"claimName": MOUNT_CLAIM}}]
    hash_ = url.path.removeprefix("base/clusters/my-cluster/namespaces/ns1/")
    assert "/" not in hash_
    assert vol.mounts == [{"name": MOUNT_CLAIM, "mountPath": "/content/artifacts", "subPath": f"{hash_}/artifacts"}]
    assert vol.annotations == {}


def test_ro_mount_sets_read_only_only_when_true() -> None:
    d = make_driver("s3://test-artifacts")
    url = BucketURL.parse(f"s3://test-artifacts/clusters/my-cluster/namespaces/ns1/{HASH}")
    vol = d.mount_bucket(url, volume_name="model", mounts=[Mount("artifacts", "/content/model", True)])
    assert vol.mounts == [
        {"name": MOUNT_CLAIM, "mountPath": "/content/model", "subPath": f"{HASH}/artifacts", "readOnly": True}
    ]
    assert "readOnly" not in vol.volumes[0]["persistentVolumeClaim"]


def test_mount_of_the_namespace_prefix_root_has_no_empty_subpath() -> None:
    d = make_driver("s3://test-artifacts/base")
    vol = d.mount_bucket(d.namespace_prefix("ns1"), volume_name="all", mounts=[Mount("", "/x", False)])
    assert vol.mounts == [{"name": MOUNT_CLAIM, "mountPath": "/x"}]


@pytest.mark.parametrize(
    "url",
    [
        "s3://other-bucket/base/clusters/my-cluster/namespaces/ns1/abc",  # another bucket
        "s3://test-artifacts/elsewhere/abc",  # outside the prefix
        "s3://test-artifacts/base2/clusters/my-cluster/namespaces/ns1/abc",  # only a string prefix of it
        "gs://test-artifacts/base/clusters/my-cluster/namespaces/ns1/abc",  # another scheme
        "s3://test-artifacts/base/abc",  # the bucket's prefix, but no namespace's (upstream's layout)
        "s3://test-artifacts/base/clusters/other-cluster/namespaces/ns1/abc",  # another cluster's
        "s3://test-artifacts/base/clusters/my-cluster/namespaces/",  # no namespace
    ],
)
def test_urls_outside_every_namespace_prefix_cannot_be_mounted(url: str) -> None:
    with pytest.raises(ValueError, match="outside the artifact bucket's namespace prefixes"):
        make_driver().mount_bucket(BucketURL.parse(url), volume_name="v", mounts=[Mount("a", "/a", True)])


def test_mount_objects_are_a_static_pv_and_its_claim_without_owner() -> None:
    pv, pvc = make_driver().mount_objects("ns1")
    assert pv["kind"] == "PersistentVolume"
    assert pv["metadata"] == {"name": "substratus-artifacts-ns1", "labels": {LABEL_MANAGED_BY: MANAGED_BY_VALUE}}
    spec = pv["spec"]
    assert spec["csi"] == {
        "driver": CSI_DRIVER,
        "volumeHandle": "substratus-artifacts-ns1",
        "volumeAttributes": {"bucketName": "test-artifacts"},
    }
    assert spec["storageClassName"] == ""  # static binding (see the driver's comment)
    assert spec["claimRef"] == {"namespace": "ns1", "name": MOUNT_CLAIM}
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["capacity"] == {"storage": "1200Gi"}
    assert spec["mountOptions"] == [
        "allow-delete",
        "allow-overwrite",
        "allow-other",
        "uid=1000",
        "gid=3003",
        "region us-west-2",
        "prefix base/clusters/my-cluster/namespaces/ns1/",
    ]
    assert pvc == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": MOUNT_CLAIM, "namespace": "ns1", "labels": {LABEL_MANAGED_BY: MANAGED_BY_VALUE}},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "resources": {"requests": {"storage": "1200Gi"}},
            "volumeName": "substratus-artifacts-ns1",
        },
    }
    for obj in (pv, pvc):
        assert "ownerReferences" not in obj["metadata"]


def test_mount_objects_per_namespace_have_unique_handles_and_only_their_namespace_prefix() -> None:
    d = make_driver("s3://test-artifacts")
    a, b = d.mount_objects("a")[0], d.mount_objects("b")[0]
    assert a["spec"]["csi"]["volumeHandle"] != b["spec"]["csi"]["volumeHandle"]
    # Even with the bucket's root as the artifact prefix, a namespace's volume shows only its own prefix.
    assert [o for o in a["spec"]["mountOptions"] if o.startswith("prefix")] == [
        "prefix clusters/my-cluster/namespaces/a/"
    ]
    assert [o for o in b["spec"]["mountOptions"] if o.startswith("prefix")] == [
        "prefix clusters/my-cluster/namespaces/b/"
    ]


def test_fuse_owner_is_the_workload_user() -> None:
    assert (WORKLOAD_UID, WORKLOAD_GID) == (security.RUN_AS_USER, security.RUN_AS_GROUP)
    assert security.FS_GROUP == WORKLOAD_GID


def test_build_context_reads_the_upload_from_s3_with_no_volumes() -> None:
    d = make_driver()
    upload = d.upload_url(Kind.MODEL, "ns1", "m1", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    context, volume = d.build_context(upload)
    assert context == f"s3://test-artifacts/{upload.path}"
    assert context.endswith("/uploads/5eb63bbbe01eeed093cb22bb8f5acdc3.tar.gz")
    assert (volume.volumes, volume.mounts, volume.annotations) == ([], [], {})
    assert d.builder_init_containers() == []
    assert d.builder_resources() == {"requests": {"cpu": "2", "memory": "12Gi", "ephemeral-storage": "100Gi"}}


def test_defaults_and_identity_annotation() -> None:
    d = make_driver()
    res = d.default_resources()
    assert (res.cpu, res.memory, res.disk) == (2, 4, 100)
    assert d.service_account_annotations("ns") == {
        "eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT}:role/substratus-ns"
    }
    assert d.image_url(Kind.MODEL, "ns", "m", "v1") == (
        f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/substratus/my-cluster-model-ns.m:v1"
    )
    assert d.oidc_provider == ISSUER  # https:// and the trailing slash stripped
    assert d.provider_arn == PROVIDER_ARN
    assert d.describe()["region"] == REGION


# ------------------------------------------------------------------------------------------- GPUs
@pytest.mark.parametrize(
    ("gpu", "name", "memory"),
    [
        (GPUType.NVIDIA_T4, "t4", None),
        (GPUType.NVIDIA_A10G, "a10g", None),
        (GPUType.NVIDIA_L4, "l4", None),
        (GPUType.NVIDIA_V100, "v100", None),
        (GPUType.NVIDIA_A100, "a100", "40960"),
        (GPUType.NVIDIA_A100_80GB, "a100", "81920"),
        (GPUType.NVIDIA_H100, "h100", None),
    ],
)
def test_gpu_types_are_placed_by_karpenter_labels(gpu: GPUType, name: str, memory: str | None) -> None:
    placement = make_driver().gpu_placement(gpu.value)
    expected = {GPU_NAME_LABEL: name, **({GPU_MEMORY_LABEL: memory} if memory else {})}
    assert placement.node_selector == expected
    assert placement.resource == "nvidia.com/gpu"
    # Karpenter GPU node pools taint nodes nvidia.com/gpu=true:NoSchedule; no spot toleration.
    assert placement.tolerations == (GPU_TOLERATION,)
    assert GPU_TOLERATION == {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_every_api_gpu_type_is_placeable_but_a_gpu_without_type_is_not() -> None:
    d = make_driver()
    assert {t.value for t in GPUType} == {k for k in d.gpu_table if k}
    with pytest.raises(UnsupportedGPUError, match=r"\(no type\) is not supported on cloud aws"):
        d.gpu_placement(None)


# ------------------------------------------------------------------------------------------- md5s
def test_content_md5_is_base64_of_the_raw_digest() -> None:
    assert content_md5("5eb63bbbe01eeed093cb22bb8f5acdc3") == "XrY7u+Ae7tCTyyK7j1rNww=="
    assert content_md5("5EB63BBBE01EEED093CB22BB8F5ACDC3") == "XrY7u+Ae7tCTyyK7j1rNww=="
    for bad in ("", "xyz", "5eb63bbbe01eeed093cb22bb8f5acdc", "5eb63bbbe01eeed093cb22bb8f5acdc3-1"):
        with pytest.raises(ValueError, match="32 hexadecimal"):
            content_md5(bad)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ({"ETag": '"5eb63bbbe01eeed093cb22bb8f5acdc3"'}, ("5eb63bbbe01eeed093cb22bb8f5acdc3", "etag")),
        ({"ETag": '"5EB63BBBE01EEED093CB22BB8F5ACDC3"'}, ("5eb63bbbe01eeed093cb22bb8f5acdc3", "etag")),
        ({"ETag": '"d41d8cd98f00b204e9800998ecf8427e-2"'}, (None, "multipart or unknown ETag")),
        (
            {"ETag": '"d41d8cd98f00b204e9800998ecf8427e-2"', "Metadata": {"md5": "5eb63bbbe01eeed093cb22bb8f5acdc3"}},
            ("5eb63bbbe01eeed093cb22bb8f5acdc3", "metadata"),
        ),
        (
            {"ETag": '"0123456789abcdef0123456789abcdef"', "ServerSideEncryption": "aws:kms"},
            (None, "encrypted with a customer or KMS key"),
        ),
        (
            {"ETag": '"0123456789abcdef0123456789abcdef"', "SSECustomerAlgorithm": "AES256", "Metadata": {"md5": "x"}},
            (None, "encrypted with a customer or KMS key"),
        ),
        (
            {"ETag": '"0123456789abcdef0123456789abcdef"', "ServerSideEncryption": "AES256"},
            ("0123456789abcdef0123456789abcdef", "etag"),  # SSE-S3 keeps the md5 ETag
        ),
        ({}, (None, "multipart or unknown ETag")),
    ],
)
def test_md5_from_head(head: dict[str, Any], expected: tuple[str | None, str]) -> None:
    assert md5_from_head(head) == expected


# ------------------------------------------------------------------------------------------- IRSA
SUBJECT = "system:serviceaccount:ns1:modeller"


def ours(*subjects: str) -> dict[str, Any]:
    return {
        "Sid": statement_id(PROVIDER_ARN),
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER_ARN},
        "Action": WEB_IDENTITY_ACTION,
        "Condition": {"StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com", f"{ISSUER}:sub": sorted(subjects)}},
    }


def allows(statement: dict[str, Any], subject: str = SUBJECT) -> bool:
    return statement_allows(statement, provider_arn=PROVIDER_ARN, issuer=ISSUER, subject=subject)


def test_statement_allows_exact_list_and_wildcard_subjects() -> None:
    assert allows(ours(SUBJECT))
    assert allows(ours("system:serviceaccount:other:x", SUBJECT))
    assert not allows(ours("system:serviceaccount:ns1:notebook"))
    like = {**ours(), "Condition": {"StringLike": {f"{ISSUER.upper()}:SUB": "system:serviceaccount:ns1:*"}}}
    assert allows(like)
    assert not allows(like, "system:serviceaccount:ns2:modeller")
    unconstrained = {**ours(), "Condition": {"StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com"}}}
    assert allows(unconstrained)  # no sub condition: every ServiceAccount of the cluster may assume it


def test_statement_allows_needs_allow_the_action_and_the_provider() -> None:
    assert not allows({**ours(SUBJECT), "Effect": "Deny"})
    assert not allows({**ours(SUBJECT), "Action": "sts:AssumeRole"})
    assert allows({**ours(SUBJECT), "Action": ["sts:TagSession", "sts:*"]})
    other = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/OTHER"
    assert not allows({**ours(SUBJECT), "Principal": {"Federated": other}})
    assert not allows({**ours(SUBJECT), "Principal": {"Service": "ec2.amazonaws.com"}})
    assert not allows({**ours(SUBJECT), "Principal": "*"})


def test_with_trusted_subjects_appends_its_own_statement_and_keeps_the_others() -> None:
    other = {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    document = {"Version": "2012-10-17", "Statement": [other]}
    updated = with_trusted_subjects(document, provider_arn=PROVIDER_ARN, issuer=ISSUER, subjects=[SUBJECT])
    assert updated == {"Version": "2012-10-17", "Statement": [other, ours(SUBJECT)]}
    assert document == {"Version": "2012-10-17", "Statement": [other]}  # input untouched
    second = "system:serviceaccount:ns2:notebook"
    again = with_trusted_subjects(updated, provider_arn=PROVIDER_ARN, issuer=ISSUER, subjects=[second])
    assert again["Statement"] == [other, ours(SUBJECT, second)]
    assert trust_allows(again, provider_arn=PROVIDER_ARN, issuer=ISSUER, subject=SUBJECT)
    assert trust_allows(again, provider_arn=PROVIDER_ARN, issuer=ISSUER, subject=second)
    assert updated["Statement"] == [other, ours(SUBJECT)]


def test_with_trusted_subjects_accepts_a_single_statement_object_and_a_string_subject() -> None:
    own = ours()
    own["Condition"]["StringEquals"][f"{ISSUER}:sub"] = SUBJECT
    updated = with_trusted_subjects(
        {"Statement": own}, provider_arn=PROVIDER_ARN, issuer=ISSUER, subjects=["system:serviceaccount:a:b"]
    )
    assert updated["Version"] == "2012-10-17"
    assert updated["Statement"] == [ours(SUBJECT, "system:serviceaccount:a:b")]


def test_statement_id_is_per_provider_and_iam_safe() -> None:
    sid = statement_id(PROVIDER_ARN)
    assert sid.isalnum()
    assert sid != statement_id(PROVIDER_ARN + "X")


# ------------------------------------------------------------------------------------------- signing
@pytest.mark.usefixtures("credentials")
async def test_signed_url_binds_md5_and_type_and_expires_within_300s() -> None:
    d = make_driver()
    url = d.upload_url(Kind.MODEL, "ns1", "m1", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    signed = await d.signed_upload_url(url, md5_hex="5eb63bbbe01eeed093cb22bb8f5acdc3", expires_in=3600)
    parts = urlsplit(signed)
    query = parse_qs(parts.query)
    assert parts.scheme == "https"
    assert parts.netloc == "test-artifacts.s3.us-west-2.amazonaws.com"  # virtual-hosted, regional
    assert parts.path == f"/{url.path}"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]
    assert query["X-Amz-SignedHeaders"] == ["content-md5;content-type;host"]
    # Nothing else the uploading client would have to send (no SDK checksum headers or parameters).
    assert sorted(query) == sorted(
        ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"]
    )
    short = await d.signed_upload_url(url, md5_hex="5eb63bbbe01eeed093cb22bb8f5acdc3", expires_in=60)
    assert parse_qs(urlsplit(short).query)["X-Amz-Expires"] == ["60"]


async def test_signing_rejects_bad_input() -> None:
    d = make_driver()
    url = d.upload_url(Kind.MODEL, "ns1", "m1", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    with pytest.raises(ValueError, match="32 hexadecimal"):
        await d.signed_upload_url(url, md5_hex="nope")
    with pytest.raises(ValueError, match="positive"):
        await d.signed_upload_url(url, md5_hex="5eb63bbbe01eeed093cb22bb8f5acdc3", expires_in=0)
    with pytest.raises(ValueError, match="not an S3 object URL"):
        await d.signed_upload_url(BucketURL.parse("s3://test-artifacts"), md5_hex="5eb63bbbe01eeed093cb22bb8f5acdc3")


def test_redact_removes_query_strings_and_signatures() -> None:
    text = (
        "PUT https://b.s3.amazonaws.com/k?X-Amz-Credential=AKID%2F&X-Amz-Signature=abcdef failed; "
        "Authorization: AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=0123abcd"
    )
    out = redact(text)
    for secret in ("abcdef", "0123abcd", "AKID"):
        assert secret not in out
    assert "https://b.s3.amazonaws.com/k?<redacted>" in out
    assert "Signature=<redacted>" in out


@pytest.mark.usefixtures("credentials")
async def test_unreachable_endpoint_is_a_quick_storage_error(closed_port: str) -> None:
    d = make_driver(endpoint_url=closed_port)
    started = time.monotonic()
    with pytest.raises(StorageError, match="reading the object's md5") as info:
        await d.object_md5(d.upload_url(Kind.MODEL, "ns1", "m1", "5eb63bbbe01eeed093cb22bb8f5acdc3"))
    assert time.monotonic() - started < 15
    assert "X-Amz-Signature" not in str(info.value)
    with pytest.raises(StorageError, match="binding system:serviceaccount:ns:sa to IAM role substratus"):
        await d.bind_identity(service_account="sa", namespace="ns")


# ------------------------------------------------------------------------------------------- settings
def settings(**env: str) -> DriverSettings:
    return DriverSettings(cluster_name="my-cluster", env=env)


async def test_missing_region_names_the_env_vars() -> None:
    with pytest.raises(CloudConfigError, match=r"AWS_REGION \(or AWS_DEFAULT_REGION\): required"):
        await create_driver(settings())
    with pytest.raises(CloudConfigError, match="AWS_REGION: 'Oregon' is not an AWS region"):
        await create_driver(settings(AWS_REGION="Oregon"))


async def test_missing_cluster_names_flag_and_env() -> None:
    with pytest.raises(CloudConfigError, match="--cluster-name/CLUSTER_NAME: required"):
        await create_driver(DriverSettings(env={"AWS_REGION": REGION}))


async def test_explicit_settings_need_no_aws_call(closed_port: str) -> None:
    """AWS_ACCOUNT_ID and AWS_OIDC_PROVIDER given: the defaults are derived without STS or EKS (the endpoint
    refuses connections, and there are not even credentials)."""
    d = await create_driver(
        settings(
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCOUNT_ID=ACCOUNT,
            AWS_OIDC_PROVIDER=f"https://{ISSUER}",
            AWS_ENDPOINT_URL=closed_port,
        )
    )
    assert d.registry_url == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/substratus"
    assert str(d.artifact_bucket) == f"s3://{ACCOUNT}-substratus-artifacts"
    assert d.principal == f"arn:aws:iam::{ACCOUNT}:role/substratus"
    assert d.oidc_provider == ISSUER
    assert d.region == REGION


async def test_china_regions_use_their_partition_and_domain() -> None:
    d = await create_driver(settings(AWS_REGION="cn-north-1", AWS_ACCOUNT_ID=ACCOUNT, AWS_OIDC_PROVIDER=ISSUER))
    assert d.registry_url == f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/substratus"
    assert d.principal == f"arn:aws-cn:iam::{ACCOUNT}:role/substratus"
    assert d.provider_arn.startswith(f"arn:aws-cn:iam::{ACCOUNT}:oidc-provider/")


async def test_all_common_settings_given_need_no_account() -> None:
    d = await create_driver(
        DriverSettings(
            cluster_name="c",
            artifact_bucket_url="s3://my-bucket/some/path/",
            registry_url="registry.example/ml",
            principal="arn:aws:iam::210987654321:role/team/ml-runner",
            env={"AWS_REGION": REGION, "AWS_OIDC_PROVIDER": ISSUER},
        )
    )
    assert d.artifact_bucket == BucketURL("s3", "my-bucket", "some/path")
    assert d.role.name == "ml-runner"  # the role's path is not part of its name
    assert d.provider_arn == f"arn:aws:iam::210987654321:oidc-provider/{ISSUER}"  # the role's account


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"artifact_bucket_url": "gs://bucket"}, "--artifact-bucket-url/ARTIFACT_BUCKET_URL must be an S3 bucket"),
        ({"artifact_bucket_url": "s3://Bad_Bucket"}, "--artifact-bucket-url/ARTIFACT_BUCKET_URL must be an S3"),
        ({"artifact_bucket_url": "ftp://x"}, "--artifact-bucket-url/ARTIFACT_BUCKET_URL: unsupported bucket URL"),
        ({"principal": "substratus@project.iam.gserviceaccount.com"}, "--principal/PRINCIPAL: expected an IAM role"),
        ({"principal": f"arn:aws:iam::{ACCOUNT}:user/someone"}, "--principal/PRINCIPAL: expected an IAM role"),
    ],
)
async def test_invalid_common_settings_name_flag_and_env(overrides: dict[str, str], message: str) -> None:
    base: dict[str, Any] = {
        "cluster_name": "c",
        "env": {"AWS_REGION": REGION, "AWS_ACCOUNT_ID": ACCOUNT, "AWS_OIDC_PROVIDER": ISSUER},
    }
    with pytest.raises(CloudConfigError, match=message.replace("(", r"\(")):
        await create_driver(DriverSettings(**{**base, **overrides}))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_ACCOUNT_ID": "12345"}, "AWS_ACCOUNT_ID: expected 12 digits"),
        ({"AWS_ACCOUNT_ID": ACCOUNT, "AWS_OIDC_PROVIDER": "https://"}, "AWS_OIDC_PROVIDER: expected the cluster's"),
    ],
)
async def test_invalid_aws_env_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(CloudConfigError, match=message):
        await create_driver(settings(AWS_REGION=REGION, **env))


@pytest.mark.usefixtures("credentials")
async def test_failed_auto_configuration_is_a_quick_clear_error(closed_port: str) -> None:
    started = time.monotonic()
    with pytest.raises(CloudConfigError, match=r"AWS_ACCOUNT_ID is not set and looking it up failed") as info:
        await create_driver(settings(AWS_REGION=REGION, AWS_ENDPOINT_URL=closed_port))
    assert "set AWS_ACCOUNT_ID, or all of --registry-url/REGISTRY_URL" in str(info.value)
    with pytest.raises(CloudConfigError, match=r"AWS_OIDC_PROVIDER is not set and looking it up failed"):
        await create_driver(settings(AWS_REGION=REGION, AWS_ACCOUNT_ID=ACCOUNT, AWS_ENDPOINT_URL=closed_port))
    assert time.monotonic() - started < 30


def test_boto3_is_imported_only_with_the_aws_driver() -> None:
    code = (
        "import sys\n"
        "import substratus_controller.cloud, substratus_controller.cloud.base, substratus_controller.cloud.local\n"
        "import substratus_controller.render\n"
        "assert 'substratus_controller.cloud.aws' not in sys.modules\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
