"""The gcp driver's pure methods: GCS FUSE mounts, build context, resources, GPU table, identity, settings."""

from __future__ import annotations

from typing import Any

import pytest

from substratus_controller.api.v1.types import GPUType
from substratus_controller.cloud.base import GPU_TOLERATION, BucketURL, CloudConfigError, Mount, UnsupportedGPUError
from substratus_controller.cloud.gcp import (
    GCSFUSE_ANNOTATIONS,
    GCSFUSE_MOUNT_OPTIONS,
    READINESS_CHECK_SCRIPT,
    READINESS_CHECK_TOKEN_URL,
    SPOT_TOLERATION,
    GCPDriver,
    _add_member,
    _region,
)
from substratus_controller.constants import Kind

from .test_gcp_signing import PRINCIPAL, driver

URL = BucketURL.parse("gs://test-artifacts/base/93ea94b18012ca14d84e1468d65e8709")


def test_rw_mount_is_writable_by_the_workload_user() -> None:
    vol = driver().mount_bucket(URL, volume_name="artifacts", mounts=[Mount("artifacts", "/content/artifacts", False)])
    assert vol.volumes == [
        {
            "name": "artifacts",
            "csi": {
                "driver": "gcsfuse.csi.storage.gke.io",
                "volumeAttributes": {"bucketName": "test-artifacts", "mountOptions": GCSFUSE_MOUNT_OPTIONS},
            },
        }
    ]
    assert vol.mounts == [
        {
            "name": "artifacts",
            "mountPath": "/content/artifacts",
            "subPath": "base/93ea94b18012ca14d84e1468d65e8709/artifacts",
        }
    ]
    assert vol.annotations == {
        "gke-gcsfuse/volumes": "true",
        "gke-gcsfuse/cpu-limit": "2",
        "gke-gcsfuse/memory-limit": "800Mi",
        "gke-gcsfuse/ephemeral-storage-limit": "100Gi",
    }
    options = dict(o.partition("=")[::2] for o in GCSFUSE_MOUNT_OPTIONS.split(","))
    # render/security.py: workload pods run as uid 1000, gid 3003.
    assert options == {"implicit-dirs": "", "uid": "1000", "gid": "3003", "file-mode": "664", "dir-mode": "775"}


def test_ro_mount_is_read_only_on_volume_and_mount() -> None:
    vol = driver().mount_bucket(URL, volume_name="model", mounts=[Mount("artifacts", "/content/model", True)])
    assert vol.volumes[0]["csi"]["readOnly"] is True
    assert vol.mounts[0]["readOnly"] is True


def test_mixed_mounts_leave_the_volume_writable() -> None:
    mounts = [Mount("artifacts", "/content/artifacts", False), Mount("logs", "/content/logs", True)]
    vol = driver().mount_bucket(URL, volume_name="v", mounts=mounts)
    assert "readOnly" not in vol.volumes[0]["csi"]
    assert ["readOnly" in m for m in vol.mounts] == [False, True]


def test_bucket_root_mounts_have_no_leading_slash() -> None:
    vol = driver().mount_bucket(
        BucketURL.parse("gs://other"), volume_name="d", mounts=[Mount("artifacts", "/content/data", True)]
    )
    assert vol.mounts[0]["subPath"] == "artifacts"
    whole = driver().mount_bucket(BucketURL.parse("gs://other"), volume_name="d", mounts=[Mount("", "/d", True)])
    assert "subPath" not in whole.mounts[0]


def test_mount_results_are_fresh() -> None:
    gcp = driver()
    first = gcp.mount_bucket(URL, volume_name="a", mounts=[Mount("artifacts", "/a", False)])
    first.annotations["x"] = "y"
    first.volumes[0]["csi"]["volumeAttributes"]["bucketName"] = "changed"
    second = gcp.mount_bucket(URL, volume_name="a", mounts=[Mount("artifacts", "/a", False)])
    assert second.annotations == GCSFUSE_ANNOTATIONS
    assert second.volumes[0]["csi"]["volumeAttributes"]["bucketName"] == "test-artifacts"


@pytest.mark.parametrize("url", ["s3://b/p", "file:///var/lib/x"])
def test_non_gs_urls_cannot_be_mounted(url: str) -> None:
    with pytest.raises(ValueError, match=r"not a gs:// URL"):
        driver().mount_bucket(BucketURL.parse(url), volume_name="v", mounts=[Mount("a", "/a", True)])


def test_no_mounts_is_an_error() -> None:
    with pytest.raises(ValueError, match="no mounts"):
        driver().mount_bucket(URL, volume_name="v", mounts=[])


def test_build_context_reads_the_upload_from_gcs() -> None:
    gcp = driver()
    upload = gcp.upload_url(Kind.MODEL, "ns", "m", "5eb63bbbe01eeed093cb22bb8f5acdc3")
    context, volume = gcp.build_context(upload)
    assert context == f"gs://test-artifacts/{upload.path}"
    assert context.endswith("/uploads/5eb63bbbe01eeed093cb22bb8f5acdc3.tar.gz")
    assert (volume.volumes, volume.mounts, volume.annotations) == ([], [], {})


def test_builder_resources_and_defaults() -> None:
    gcp = driver()
    assert gcp.builder_resources() == {"requests": {"cpu": "2", "memory": "12Gi", "ephemeral-storage": "100Gi"}}
    gcp.builder_resources()["requests"]["cpu"] = "9"
    assert gcp.builder_resources()["requests"]["cpu"] == "2"
    defaults = gcp.default_resources()
    assert (defaults.cpu, defaults.memory, defaults.disk) == (2, 4, 100)


def test_builder_waits_for_workload_identity() -> None:
    (init,) = driver().builder_init_containers()
    assert init["name"] == "gcp-workload-identity-readiness-check"
    assert init["image"] == "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"
    assert init["command"][:2] == ["/bin/bash", "-c"]
    script = init["command"][2]
    assert script == READINESS_CHECK_SCRIPT
    assert READINESS_CHECK_TOKEN_URL == (
        "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token"
    )
    for flag in ("--retry 30", "--retry-connrefused", "--retry-max-time 60", "--connect-timeout 3", "--fail",
                 "--retry-all-errors", "-H 'Metadata-Flavor: Google'", "-o /dev/null"):  # fmt: skip
        assert flag in script
    assert "exit 1" in script
    assert ">&2" in script


def test_service_accounts_are_annotated_with_their_namespace_principal_never_the_controller_one() -> None:
    d = driver()
    assert d.service_account_annotations("team-a") == {
        "iam.gke.io/gcp-service-account": "substratus-team-a@test-project.iam.gserviceaccount.com"
    }
    assert d.service_account_annotations("team-b") != d.service_account_annotations("team-a")
    assert PRINCIPAL not in d.service_account_annotations("team-a").values()


EXPECTED_ACCELERATORS = {
    "nvidia-t4": "nvidia-tesla-t4",
    "nvidia-l4": "nvidia-l4",
    "nvidia-a100": "nvidia-tesla-a100",
    "nvidia-a100-80gb": "nvidia-a100-80gb",
    "nvidia-h100": "nvidia-h100-80gb",
    "nvidia-v100": "nvidia-tesla-v100",
}


@pytest.mark.parametrize(("gpu", "accelerator"), sorted(EXPECTED_ACCELERATORS.items()))
def test_gpu_placement(gpu: str, accelerator: str) -> None:
    placement = driver().gpu_placement(gpu)
    assert placement.resource == "nvidia.com/gpu"
    assert placement.node_selector == {"cloud.google.com/gke-accelerator": accelerator}
    assert placement.tolerations == (GPU_TOLERATION, SPOT_TOLERATION)
    assert SPOT_TOLERATION == {
        "key": "cloud.google.com/gke-spot",
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    }


def test_every_api_gpu_type_is_placed_or_unsupported() -> None:
    known = {t.value for t in GPUType}
    assert set(EXPECTED_ACCELERATORS) == known - {"nvidia-a10g"}


@pytest.mark.parametrize("gpu", ["nvidia-a10g", None, "nvidia-tesla-t4"])
def test_unsupported_gpus(gpu: str | None) -> None:
    with pytest.raises(UnsupportedGPUError, match="not supported on cloud gcp") as info:
        driver().gpu_placement(gpu)
    assert "nvidia-t4" in str(info.value)


def test_image_and_artifact_names() -> None:
    gcp = driver()
    assert gcp.image_url(Kind.MODEL, "ns", "m", "v1") == (
        "us-central1-docker.pkg.dev/test-project/substratus/test-cluster-model-ns.m:v1"
    )
    assert str(gcp.artifact_url(Kind.MODEL, "my-ns", "my-model")).startswith("gs://test-artifacts/")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"artifact_bucket": BucketURL.parse("s3://b")}, "--artifact-bucket-url/ARTIFACT_BUCKET_URL must be a gs://"),
        ({"principal": "substratus"}, "--principal/PRINCIPAL must be a Google service account email"),
    ],
)
def test_invalid_settings(kwargs: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {
        "cluster_name": "c",
        "artifact_bucket": BucketURL.parse("gs://b"),
        "registry_url": "r",
        "principal": PRINCIPAL,
        "project_id": "p",
    }
    with pytest.raises(CloudConfigError, match=message):
        GCPDriver(**{**settings, **kwargs})  # type: ignore[arg-type]


def test_describe_has_no_secrets_and_names_the_project() -> None:
    described = driver(storage_endpoint="127.0.0.1:9023").describe()
    assert described == {
        "cloud": "gcp",
        "cluster_name": "test-cluster",
        "artifact_bucket": "gs://test-artifacts",
        "registry_url": "us-central1-docker.pkg.dev/test-project/substratus",
        "principal": PRINCIPAL,
        "workload_principal": "substratus-{namespace}@test-project.iam.gserviceaccount.com",
        "project_id": "test-project",
        "storage_endpoint": "http://127.0.0.1:9023",
    }


@pytest.mark.parametrize(
    ("location", "region"),
    [("us-central1-a", "us-central1"), ("us-central1", "us-central1"), ("europe-west4-b", "europe-west4")],
)
def test_region_is_the_first_two_dash_parts(location: str, region: str) -> None:
    assert _region(location) == region


@pytest.mark.parametrize("location", ["uscentral1", "", "-central1", "us-"])
def test_a_location_without_two_dash_parts_is_a_clear_error(location: str) -> None:
    with pytest.raises(CloudConfigError, match=r"CLUSTER_LOCATION .* is not a GCP region or zone"):
        _region(location)


def test_add_member_is_idempotent_and_keeps_other_bindings() -> None:
    role, member = "roles/iam.workloadIdentityUser", "serviceAccount:p.svc.id.goog[ns/ksa]"
    conditional = {"role": role, "members": ["user:x"], "condition": {"title": "t", "expression": "true"}}
    policy: dict[str, Any] = {"bindings": [{"role": "roles/viewer", "members": ["user:a"]}, conditional]}
    assert _add_member(policy, role, member) is True
    assert _add_member(policy, role, member) is False
    assert policy["bindings"] == [
        {"role": "roles/viewer", "members": ["user:a"]},
        conditional,
        {"role": role, "members": [member]},
    ]
    assert _add_member(policy, role, "serviceAccount:p.svc.id.goog[ns/other]") is True
    assert policy["bindings"][2]["members"] == [member, "serviceAccount:p.svc.id.goog[ns/other]"]
    empty: dict[str, Any] = {"etag": "BwX="}
    assert _add_member(empty, role, member) is True
    assert empty == {"etag": "BwX=", "bindings": [{"role": role, "members": [member]}]}
