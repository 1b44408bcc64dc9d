"""`substratus-controller run --cloud aws|gcp` as a process against the real API server, given each cloud's settings.

AWS runs against moto in server mode (S3, IAM, ECR); GCP against the loopback fake GCE metadata server (which
also hands out the credentials, as on GKE) and fake IAM server of the GCP driver's own tests. A Dataset is
created and its loader Job, ServiceAccount and mount objects must carry that cloud's wiring. No kubelet runs
here, so the Job never starts; only what the controller writes is checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from substratus_controller.cloud.base import object_hash
from substratus_controller.constants import Kind
from substratus_controller.resources import DATASETS
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.testing import ControlPlane
from substratus_controller.testing.stack import ControllerProcess
from tests.integration.cloud.test_aws_moto import moto_server
from tests.integration.cloud.test_gcp_iam import TOKEN, FakeIAMServer, member
from tests.integration.cloud.test_gcp_metadata import FakeMetadataServer

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/substratus"
OIDC = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE"


async def eventually(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
        except NotFound:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


@pytest.fixture
async def api(crds: ControlPlane) -> AsyncIterator[tuple[Client, str]]:
    client = await Client.connect(crds.kubeconfig)
    ns = f"cloud-{uuid.uuid4().hex[:8]}"
    await client.create(k8s.NAMESPACES, {"metadata": {"name": ns}})
    yield client, ns
    await client.close()


def dataset(ns: str) -> dict[str, Any]:
    return {"apiVersion": "substratus.ai/v1", "kind": "Dataset", "metadata": {"name": "squad", "namespace": ns},
            "spec": {"image": "example.com/loader:1"}}  # fmt: skip


# --------------------------------------------------------------------------------------------------- aws
@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


async def test_aws_controller_wires_irsa_mountpoint_and_s3(
    api: tuple[Client, str], crds: ControlPlane, moto_url: str, tmp_path: Path
) -> None:
    import boto3

    client, ns = api
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-west-2"}
    session = boto3.session.Session(
        region_name="us-west-2", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    s3 = session.client("s3", endpoint_url=moto_url)
    s3.create_bucket(Bucket="ml-artifacts", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    iam = session.client("iam", endpoint_url=moto_url)
    empty = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName="substratus", AssumeRolePolicyDocument=empty)  # the controller's own
    iam.create_role(RoleName=f"substratus-{ns}", AssumeRolePolicyDocument=empty)  # the namespace's workloads'
    env = {**creds, "AWS_ENDPOINT_URL": moto_url, "CLUSTER_NAME": "prod",
           "ARTIFACT_BUCKET_URL": "s3://ml-artifacts", "PRINCIPAL": ROLE, "AWS_ACCOUNT_ID": ACCOUNT,
           "AWS_OIDC_PROVIDER": OIDC}  # fmt: skip
    controller = ControllerProcess(crds.kubeconfig, log=tmp_path / "controller.log", env=env, cloud="aws")
    try:
        await controller.start()
        await client.create(DATASETS, dataset(ns))
        job = await eventually(lambda: client.get(k8s.JOBS, "squad-data-loader", ns))
        pod = job["spec"]["template"]["spec"]
        assert {"name": "substratus-artifacts", "persistentVolumeClaim": {"claimName": "substratus-artifacts"}} in pod[
            "volumes"
        ]
        pv = await client.get(k8s.PERSISTENTVOLUMES, f"substratus-artifacts-{ns}")
        assert pv["spec"]["csi"]["driver"] == "s3.csi.aws.com"
        assert pv["spec"]["csi"]["volumeAttributes"]["bucketName"] == "ml-artifacts"
        pvc = await client.get(k8s.PERSISTENTVOLUMECLAIMS, "substratus-artifacts", ns)
        assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
        sa = await client.get(k8s.SERVICEACCOUNTS, "substratus-data-loader", ns)
        assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == f"{ROLE}-{ns}"
        trust = iam.get_role(RoleName=f"substratus-{ns}")["Role"]["AssumeRolePolicyDocument"]
        assert f"system:serviceaccount:{ns}:substratus-data-loader" in json.dumps(trust)
        # the controller's own role is never given to a workload
        assert iam.get_role(RoleName="substratus")["Role"]["AssumeRolePolicyDocument"]["Statement"] == []
        prefix = f"clusters/prod/namespaces/{ns}/{object_hash('prod', Kind.DATASET, ns, 'squad')}"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ml-artifacts").get("Contents", [])]
        assert f"{prefix}/artifacts/" in keys
        obj = await client.get(DATASETS, "squad", ns)
        assert obj["status"]["artifacts"]["url"] == f"s3://ml-artifacts/{prefix}"
        assert '"cloud": "aws"' in controller.log.read_text() or '"cloud":"aws"' in controller.log.read_text()
    finally:
        await controller.stop()


# --------------------------------------------------------------------------------------------------- gcp
async def test_gcp_controller_wires_workload_identity_and_gcs_fuse(
    api: tuple[Client, str], crds: ControlPlane, tmp_path: Path
) -> None:
    client, ns = api
    account = "controller@acme-ml.iam.gserviceaccount.com"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    metadata = await FakeMetadataServer(email=account, token=TOKEN).start()
    iam = await FakeIAMServer(signer_email=account, key=key).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_"))}
    env.pop("STORAGE_EMULATOR_HOST", None)
    env.update(GCE_METADATA_HOST=metadata.host, GCE_METADATA_IP=metadata.host, GCP_IAM_ENDPOINT=iam.url,
               GCP_IAM_CREDENTIALS_ENDPOINT=iam.url, CLOUDSDK_CONFIG=str(tmp_path), HOME=str(tmp_path))  # fmt: skip
    controller = ControllerProcess(
        crds.kubeconfig, log=tmp_path / "controller.log", env=env, cloud="gcp", inherit_env=False
    )
    try:
        await controller.start()
        await client.create(DATASETS, dataset(ns))
        try:
            job = await eventually(lambda: client.get(k8s.JOBS, "squad-data-loader", ns))
        except AssertionError:
            raise AssertionError(controller.log.read_text()[-4000:]) from None
        template = job["spec"]["template"]
        assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
        volume = next(v for v in template["spec"]["volumes"] if v["name"] == "artifacts")
        assert volume["csi"]["driver"] == "gcsfuse.csi.storage.gke.io"
        sa = await client.get(k8s.SERVICEACCOUNTS, "substratus-data-loader", ns)
        principal = sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert principal == f"substratus-{ns}@acme-ml.iam.gserviceaccount.com"  # the namespace's, not the controller's
        assert member(ns, "substratus-data-loader") in json.dumps(iam.policies[principal])
        assert member(ns, "substratus-data-loader") not in json.dumps(iam.policies.get(account, {}))
        obj = await client.get(DATASETS, "squad", ns)
        assert obj["status"]["artifacts"]["url"].startswith("gs://")
    finally:
        await controller.stop()
        await iam.stop()
        await metadata.stop()
