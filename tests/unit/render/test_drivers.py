"""The renderer tests' drivers (drivers.py) are the product's own: each real driver is configured exactly as
its `create_driver` configures it from a user's settings, offline, and no driver mounts storage as root."""

from __future__ import annotations

from substratus_controller.cloud import aws, gcp
from substratus_controller.cloud.base import CloudDriver, DriverSettings, Mount
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import WORKLOAD_GID, WORKLOAD_UID, Kind

from .drivers import DRIVERS, FakeGKEDriver, aws_driver, gcp_driver

# Nothing listens on port 9 of loopback: a metadata lookup would fail, not hang.
NO_METADATA = "127.0.0.1:9"


def test_the_drivers_are_the_real_ones() -> None:
    classes = {name: type(make()) for name, make in DRIVERS.items()}
    assert classes == {"local": LocalDriver, "gcp": gcp.GCPDriver, "aws": aws.AWSDriver}
    assert all(make().name == name for name, make in DRIVERS.items())


async def test_the_gcp_driver_is_what_create_driver_derives() -> None:
    settings = DriverSettings(
        cluster_name="test-cluster", env={"PROJECT_ID": "test-project", "CLUSTER_LOCATION": "us-central1-a"}
    )
    derived = await gcp.create_driver(settings, metadata_host=NO_METADATA)
    assert gcp_driver().describe() == derived.describe()


async def test_the_aws_driver_is_what_create_driver_derives() -> None:
    driver = aws_driver()
    env = {"AWS_REGION": "us-west-2", "AWS_ACCOUNT_ID": "123456789012", "AWS_OIDC_PROVIDER": driver.oidc_provider}
    derived = await aws.create_driver(DriverSettings(cluster_name="test-cluster", env=env))
    assert driver.describe() == derived.describe()


def _mount_options(driver: CloudDriver) -> set[str]:
    url = driver.artifact_url(Kind.MODEL, "ns", "m")
    bucket = driver.mount_bucket(url, volume_name="artifacts", mounts=[Mount("artifacts", "/content/artifacts", False)])
    options: set[str] = set()
    for volume in bucket.volumes:
        options.update((volume.get("csi") or {}).get("volumeAttributes", {}).get("mountOptions", "").split(","))
    for obj in driver.mount_objects("ns"):
        options.update(obj.get("spec", {}).get("mountOptions", []))
    return options


def test_fuse_mounts_belong_to_the_workload_user() -> None:
    """The pods run as uid 1000 / gid 3003 (render/security.py): a FUSE mount owned by uid 0 is unwritable."""
    for driver in (gcp_driver(), aws_driver(), FakeGKEDriver()):
        options = _mount_options(driver)
        assert {f"uid={WORKLOAD_UID}", f"gid={WORKLOAD_GID}"} <= options, driver.name
        assert "uid=0" not in options, driver.name
