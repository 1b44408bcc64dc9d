"""Shapes of individual children: labels, owner references, ServiceAccounts, build Jobs, run Jobs,
notebook children, server children (beyond what the golden files show)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from substratus_controller.api.v1 import Dataset, Model, Notebook, Server
from substratus_controller.cloud.base import BucketURL
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import Kind
from substratus_controller.render import (
    RenderContext,
    build_job,
    loader_job,
    modeller_job,
    notebook_pod,
    notebook_pvc,
    notebook_token_secret,
    pod_token_secret,
    server_deployment,
    server_service,
    service_account,
    target_image,
)
from substratus_controller.render.errors import InvalidSpecError
from substratus_controller.render.labels import labels, owner_reference, selector
from substratus_controller.render.workloads import modeller_backoff_limit

from .drivers import FakeGKEDriver, local_driver

CTX = RenderContext(cloud=local_driver())
META = {"name": "x", "namespace": "ns", "uid": "uid-1"}


def obj(cls: Any, **spec: Any) -> Any:
    base: dict[str, Any] = {"image": "img"}
    if cls is Server:
        base["model"] = {"name": "m"}
    base.update(spec)
    return cls.model_validate({"metadata": META, "spec": base})


def test_labels_and_selector() -> None:
    assert labels(Kind.MODEL, "opt", "run") == {
        "app.kubernetes.io/managed-by": "substratus",
        "substratus.ai/model": "opt",
        "model": "opt",
        "role": "run",
    }
    assert "role" not in labels(Kind.MODEL, "opt", None)
    assert selector(Kind.SERVER, "s") == {"substratus.ai/server": "s", "role": "run"}


def test_owner_reference() -> None:
    assert owner_reference(obj(Dataset)) == {
        "apiVersion": "substratus.ai/v1",
        "kind": "Dataset",
        "name": "x",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_owner_reference_needs_uid() -> None:
    ds = Dataset.model_validate({"metadata": {"name": "x", "namespace": "ns"}, "spec": {"image": "i"}})
    with pytest.raises(ValueError, match="uid"):
        owner_reference(ds)


def test_service_account_no_owner_and_annotations() -> None:
    local = service_account("modeller", "ns", LocalDriver())
    assert local == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "modeller", "namespace": "ns", "labels": {"app.kubernetes.io/managed-by": "substratus"}},
    }
    gke = service_account("modeller", "ns", FakeGKEDriver())
    assert gke["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "substratus-ns@test-project.iam.gserviceaccount.com"
    }
    assert "ownerReferences" not in gke["metadata"]


@pytest.mark.parametrize(
    ("git", "tag"),
    [
        ({"url": "u", "tag": "v1.2.3"}, "v1.2.3"),
        ({"url": "u", "branch": "feature/x"}, "feature-x"),
        ({"url": "u"}, "latest"),
    ],
)
def test_target_image_git(git: dict[str, str], tag: str) -> None:
    m = obj(Model, build={"git": git})
    assert target_image(m, Kind.MODEL, CTX.cloud) == f"10.244.0.1:5000/substratus-model-ns.x:{tag}"


def test_target_image_upload_lowercases_md5() -> None:
    m = obj(Notebook, build={"upload": {"md5Checksum": "ABCDEF0123456789ABCDEF0123456789", "requestID": "r"}})
    assert target_image(m, Kind.NOTEBOOK, CTX.cloud).endswith("-notebook-ns.x:abcdef0123456789abcdef0123456789")


def test_target_image_without_build() -> None:
    with pytest.raises(InvalidSpecError) as err:
        target_image(obj(Model), Kind.MODEL, CTX.cloud)
    assert err.value.field == "spec.build"


def test_build_job_git_without_ref_or_path() -> None:
    job = build_job(obj(Dataset, build={"git": {"url": "https://g/r"}}), Kind.DATASET, CTX, target="t:1", build_id="b")
    pod = job["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["args"] == ["clone", "https://g/r", "/workspace"]
    assert not any(a.startswith("--context-sub-path") for a in pod["containers"][0]["args"])
    assert "resources" not in pod["containers"][0]


def test_build_job_upload_local_mounts_upload_dir() -> None:
    ds = obj(Dataset, build={"upload": {"md5Checksum": "0" * 32, "requestID": "r"}})
    pod = build_job(ds, Kind.DATASET, CTX, target="t:1", build_id="b")["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    builder = pod["containers"][0]
    assert builder["args"][0] == "--context=tar:///upload/00000000000000000000000000000000.tar.gz"
    assert {m["name"] for m in builder["volumeMounts"]} == {"workspace", "upload"}
    upload = CTX.cloud.upload_url(Kind.DATASET, "ns", "x", "00000000000000000000000000000000")
    assert {"name": "upload", "hostPath": {"path": upload.path.rsplit("/", 1)[0], "type": "Directory"}} in pod[
        "volumes"
    ]


def test_build_job_rejects_option_like_url() -> None:
    ds = obj(Dataset, build={"git": {"url": "--upload-pack=touch /tmp/x"}})
    with pytest.raises(InvalidSpecError) as err:
        build_job(ds, Kind.DATASET, CTX, target="t:1", build_id="b")
    assert err.value.field == "spec.build.git.url"


def test_build_job_custom_images() -> None:
    ctx = RenderContext(cloud=local_driver(), builder_image="k:1", git_image="g:1")
    pod = build_job(obj(Model, build={"git": {"url": "u"}}), Kind.MODEL, ctx, target="t", build_id="b")
    assert pod["spec"]["template"]["spec"]["containers"][0]["image"] == "k:1"
    assert pod["spec"]["template"]["spec"]["initContainers"][0]["image"] == "g:1"


@pytest.mark.parametrize("build_id", ["", "-bad", "x" * 64])
def test_build_id_must_be_a_label_value(build_id: str) -> None:
    with pytest.raises(ValueError, match=r"substratus\.ai/build"):
        build_job(obj(Model, build={"git": {"url": "u"}}), Kind.MODEL, CTX, target="t", build_id=build_id)


@pytest.mark.parametrize(
    ("resources", "limit"),
    [
        (None, 0),
        ({"cpu": 2, "gpu": {"count": 0}}, 2),
        ({"cpu": 3, "gpu": {"type": "nvidia-t4", "count": 0}}, 2),
        ({"cpu": 4, "gpu": {"count": 0}}, 0),
        ({"cpu": 2}, 0),  # no explicit gpu: upstream's heuristic does not apply
        ({"cpu": 2, "gpu": {"count": 1}}, 0),
        ({"gpu": {"count": 0}}, 2),  # cpu defaults to 2
    ],
)
def test_modeller_backoff_heuristic(resources: dict[str, Any] | None, limit: int) -> None:
    m = obj(Model, **({"resources": resources} if resources is not None else {}))
    assert modeller_backoff_limit(m) == limit
    job = modeller_job(m, CTX, run_id="r", base_model_url=None, dataset_url=None)
    assert job["spec"]["backoffLimit"] == limit


def test_loader_job_needs_image() -> None:
    ds = Dataset.model_validate({"metadata": META, "spec": {"build": {"git": {"url": "u"}}}})
    with pytest.raises(InvalidSpecError) as err:
        loader_job(ds, CTX, run_id="r")
    assert err.value.field == "spec.image"


def test_run_id_label_on_job_and_pods() -> None:
    job = loader_job(obj(Dataset), CTX, run_id="abc123")
    assert job["metadata"]["labels"]["substratus.ai/run"] == "abc123"
    assert job["spec"]["template"]["metadata"]["labels"]["substratus.ai/run"] == "abc123"
    with pytest.raises(ValueError, match=r"substratus\.ai/run"):
        loader_job(obj(Dataset), CTX, run_id="")


def test_modeller_missing_dependency_url_is_not_mounted() -> None:
    m = obj(Model, model={"name": "base"}, dataset={"name": "d"})
    pod = modeller_job(m, CTX, run_id="r", base_model_url=None, dataset_url=None)["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["params", "artifacts", "home", "tmp"]


def test_dependency_url_without_reference_is_a_bug() -> None:
    with pytest.raises(ValueError, match=r"spec\.dataset is not set"):
        modeller_job(obj(Model), CTX, run_id="r", base_model_url=None, dataset_url=BucketURL.parse("file:///d"))


def test_env_error_propagates_from_workloads() -> None:
    with pytest.raises(InvalidSpecError) as err:
        loader_job(obj(Dataset, env={"T": "x ${{ secrets.a.b }}"}), CTX, run_id="r")
    assert err.value.field == "spec.env.T"


def test_notebook_default_command_only_when_unset() -> None:
    def command(nb: Notebook) -> Any:
        pod = notebook_pod(nb, CTX, token_secret="s", model_url=None, dataset_url=None, pvc=None)
        return pod["spec"]["containers"][0].get("command")

    assert command(obj(Notebook)) == [
        "jupyter",
        "lab",
        "--allow-root",
        "--ip=0.0.0.0",
        "--NotebookApp.token=$(NOTEBOOK_TOKEN)",
        "--notebook-dir=/content",
    ]
    assert command(obj(Notebook, command=["notebook.sh"])) == ["notebook.sh"]
    assert command(obj(Notebook, command=[])) is None  # explicit empty: the image's entrypoint


def test_notebook_token_env_and_reserved_name() -> None:
    pod = notebook_pod(obj(Notebook), CTX, token_secret="x-notebook-token", model_url=None, dataset_url=None, pvc=None)
    assert {"name": "NOTEBOOK_TOKEN", "valueFrom": {"secretKeyRef": {"name": "x-notebook-token", "key": "token"}}} in (
        pod["spec"]["containers"][0]["env"]
    )
    assert "restartPolicy" not in pod["spec"]
    # The Pod cache keeps metadata only: the plan (and the plugin) read the name back from an annotation.
    assert pod["metadata"]["annotations"]["substratus.ai/token-secret"] == "x-notebook-token"
    assert pod_token_secret({"metadata": pod["metadata"]}) == "x-notebook-token"
    assert pod_token_secret({"metadata": {"annotations": {}}, "spec": pod["spec"]}) is None
    with pytest.raises(InvalidSpecError) as err:
        notebook_pod(obj(Notebook, env={"NOTEBOOK_TOKEN": "default"}), CTX, token_secret="s", model_url=None,
                     dataset_url=None, pvc=None)  # fmt: skip
    assert err.value.field == "spec.env.NOTEBOOK_TOKEN"


def test_notebook_secret_and_pvc() -> None:
    nb = obj(Notebook)
    secret = notebook_token_secret(nb, name="x-notebook-token-0123456789", token="s3cr3t")
    assert secret["metadata"]["name"] == "x-notebook-token-0123456789"
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["token"]) == b"s3cr3t"
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "Notebook"
    with pytest.raises(ValueError, match="token"):
        notebook_token_secret(nb, name="x-notebook-token-0123456789", token="")
    pvc = notebook_pvc(nb, size="20Gi")
    assert pvc["metadata"]["name"] == "x-notebook"
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}}


def test_server_selector_matches_pod_labels() -> None:
    server = obj(Server)
    deployment = server_deployment(server, CTX, model_url=CTX.cloud.artifact_url(Kind.MODEL, "ns", "m"))
    service = server_service(server)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for sel in (deployment["spec"]["selector"]["matchLabels"], service["spec"]["selector"]):
        assert sel.items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080, "targetPort": "http-serve"}]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http-serve", "containerPort": 8080}]
    assert container["readinessProbe"] == {"httpGet": {"path": "/", "port": "http-serve"}}
    assert container["imagePullPolicy"] == "Always"


def test_inputs_not_mutated() -> None:
    nb = obj(Notebook, env={"A": "1"}, params={"p": 1})
    before = nb.model_dump()
    notebook_pod(nb, CTX, token_secret="s", model_url=None, dataset_url=None, pvc="x-notebook")
    assert nb.model_dump() == before


def test_image_names_never_collide_across_namespaces() -> None:
    """Security model (README): `team-a/llama` and `team/a-llama` got the same image upstream (`...-team-a-llama`)."""
    one = CTX.cloud.image_url(Kind.MODEL, "team-a", "llama", "v1")
    two = CTX.cloud.image_url(Kind.MODEL, "team", "a-llama", "v1")
    assert one != two
