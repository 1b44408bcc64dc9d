"""End-to-end flows: the controller process on a real control plane with a simulated kubelet."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.pss import restricted_violations

from e2e.conftest import (
    WRITES,
    condition,
    events_for,
    eventually,
    get,
    manifest,
    metric_sum,
    resource_versions,
    wait_condition,
)
from substratus_controller.constants import SA_MODEL_SERVER, SA_MODELLER, Kind
from substratus_controller.render.names import is_notebook_token_secret_name
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import Forbidden, Invalid, NotFound
from substratus_controller.runtime.resource import Resource
from substratus_controller.testing.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
RESOURCEQUOTAS = Resource("", "v1", "resourcequotas", "ResourceQuota")
pytestmark = pytest.mark.e2e


async def create(client: Client, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(obj)
    body["metadata"]["namespace"] = namespace
    return await client.create(RESOURCE_OF[Kind(obj["kind"])], body)


async def patch(client: Client, kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    return await client.patch(RESOURCE_OF[kind], name, body, namespace)


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def mounts(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in c.get("volumeMounts") or ()}


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or ()}


# ------------------------------------------------------------------------------------------------- the chain
async def test_full_chain_reaches_ready_and_honours_the_container_contract(
    stack: Stack, client: Client, namespace: str
) -> None:
    await stack.kubectl("apply", "-n", namespace, "-R", "-f", str(ROOT / "examples"))
    waited = await stack.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "datasets,models,notebooks,servers", "--all",
        "--timeout=120s", check=False,
    )  # fmt: skip
    assert waited.returncode == 0, f"{waited.stderr}\n{stack.tail_log()}"
    assert waited.stdout.count("condition met") == 5

    # Dataset: loader Job, params ConfigMap, artifacts.
    ds = await get(client, Kind.DATASET, namespace, "squad")
    assert ds["status"]["ready"] is True
    assert ds["status"]["observedGeneration"] == ds["metadata"]["generation"]
    assert ds["status"]["artifacts"]["url"].startswith("file://")
    assert all(c["observedGeneration"] == ds["metadata"]["generation"] for c in ds["status"]["conditions"])
    assert condition(ds, "Complete")["reason"] == "JobComplete"
    job = await client.get(k8s.JOBS, "squad-data-loader", namespace)
    pod = job["spec"]["template"]["spec"]
    load = container(pod, "load")
    assert pod["serviceAccountName"] == "substratus-data-loader"
    assert job["spec"]["backoffLimit"] == 2
    assert mounts(load)["/content/params.json"]["subPath"] == "params.json"
    assert "readOnly" not in mounts(load)["/content/artifacts"] or not mounts(load)["/content/artifacts"]["readOnly"]
    assert env(load)["PARAM_NAME"] == "squad"
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["role"] == "run"
    assert labels["substratus.ai/dataset"] == "squad"
    assert labels["app.kubernetes.io/managed-by"] == "substratus"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Dataset", "squad", True)
    cm = await client.get(k8s.CONFIGMAPS, "squad-dataset-params", namespace)
    assert json.loads(cm["data"]["params.json"]) == {"name": "squad"}

    # Trained model: base model and dataset mounted read-only; own artifacts read-write.
    trained = await client.get(k8s.JOBS, "facebook-opt-125m-squad-modeller", namespace)
    model_c = container(trained["spec"]["template"]["spec"], "model")
    m = mounts(model_c)
    assert m["/content/data"]["readOnly"] is True
    assert m["/content/model"]["readOnly"] is True
    assert "/content/artifacts" in m
    assert env(model_c)["PARAM_EPOCHS"] == "1"
    assert trained["spec"]["template"]["spec"]["serviceAccountName"] == "substratus-modeller"

    # Server: Service 8080 -> http-serve, Deployment with the model mounted.
    svc = await client.get(k8s.SERVICES, "facebook-opt-125m-squad-server", namespace)
    assert svc["spec"]["ports"][0]["port"] == 8080
    assert svc["spec"]["ports"][0]["targetPort"] == "http-serve"
    dep = await client.get(k8s.DEPLOYMENTS, "facebook-opt-125m-squad-server", namespace)
    serve = container(dep["spec"]["template"]["spec"], "serve")
    assert serve["ports"][0] == {"name": "http-serve", "containerPort": 8080, "protocol": "TCP"}
    assert mounts(serve)["/content/model"]["readOnly"] is True
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "substratus-model-server"

    # Notebook: Pod with the token from its Secret.
    nb_pod = await client.get(k8s.PODS, "facebook-opt-125m-squad-notebook", namespace)
    nb = container(nb_pod["spec"], "notebook")
    token_ref = env(nb)["NOTEBOOK_TOKEN"]["secretKeyRef"]
    assert token_ref["key"] == "token"
    assert is_notebook_token_secret_name("facebook-opt-125m-squad", token_ref["name"]), token_ref
    secret = await client.get(k8s.SECRETS, token_ref["name"], namespace)
    assert len(base64.b64decode(secret["data"]["token"])) >= 32
    assert nb["ports"][0]["containerPort"] == 8888
    assert set(mounts(nb)) >= {"/content/params.json", "/content/artifacts", "/content/data", "/content/model"}

    # Shared ServiceAccounts exist, unowned.
    for sa in ("substratus-data-loader", "substratus-modeller", "substratus-notebook", "substratus-model-server"):
        obj = await client.get(k8s.SERVICEACCOUNTS, sa, namespace)
        assert not obj["metadata"].get("ownerReferences")

    # Every workload pod meets the "restricted" profile (the builder is the documented exception), except
    # for the local driver's hostPath artifact mounts.
    for spec in (pod, trained["spec"]["template"]["spec"], dep["spec"]["template"]["spec"], nb_pod["spec"]):
        problems = [p for p in restricted_violations(spec) if "hostPath" not in p]
        assert problems == [], problems


# ------------------------------------------------------------------------------------------------- builds
async def test_git_build_sets_spec_image_then_the_workload_runs(client: Client, namespace: str) -> None:
    await create(client, namespace, manifest("Dataset", "built", {
        "build": {"git": {"url": "https://github.com/example/loader", "tag": "v1.2"}},
        "params": {"name": "squad"},
    }))  # fmt: skip
    job = await eventually(lambda: client.get(k8s.JOBS, "built-dataset-bld", namespace))
    assert job["metadata"]["annotations"]["image"].endswith("-dataset-" + namespace + ".built:v1.2")
    init = job["spec"]["template"]["spec"]["initContainers"][0]
    assert init["name"] == "git-clone"
    assert "https://github.com/example/loader" in init["args"]
    ds = await wait_condition(client, Kind.DATASET, namespace, "built", "Ready", "True", timeout=60)
    assert ds["spec"]["image"] == job["metadata"]["annotations"]["image"]
    assert condition(ds, "Built")["reason"] == "JobComplete"
    loader = await client.get(k8s.JOBS, "built-data-loader", namespace)
    assert container(loader["spec"]["template"]["spec"], "load")["image"] == ds["spec"]["image"]


async def test_build_failure_is_reported_without_a_retry_loop(client: Client, namespace: str) -> None:
    await create(client, namespace, manifest("Model", "bad-build", {
        "build": {"git": {"url": "https://github.com/example/broken"}},
    }))  # fmt: skip
    obj = await wait_condition(client, Kind.MODEL, namespace, "bad-build", "Built", "False", reason="BuildFailed")
    assert condition(obj, "Ready") | {"lastTransitionTime": None} == condition(obj, "Ready") | {
        "lastTransitionTime": None,
        "status": "False",
        "reason": "BuildFailed",
    }
    assert obj["status"]["ready"] is False

    async def build_failed_event() -> bool:  # the Event follows the status write
        events = await events_for(client, namespace, "bad-build")
        return any(e["reason"] == "BuildFailed" and e["type"] == "Warning" for e in events)

    await eventually(build_failed_event, timeout=30)
    job = await client.get(k8s.JOBS, "bad-build-model-bld", namespace)
    await asyncio.sleep(3)  # no retry: the same failed Job stays, status untouched
    again = await client.get(k8s.JOBS, "bad-build-model-bld", namespace)
    assert again["metadata"]["uid"] == job["metadata"]["uid"]
    assert (await get(client, Kind.MODEL, namespace, "bad-build"))["metadata"]["resourceVersion"] == obj["metadata"][
        "resourceVersion"
    ]
    # The retry annotation starts a new build.
    await patch(client, Kind.MODEL, namespace, "bad-build", {"metadata": {"annotations": {"substratus.ai/retry": "1"}}})

    async def replaced() -> bool:
        try:
            j = await client.get(k8s.JOBS, "bad-build-model-bld", namespace)
        except NotFound:
            return False
        return bool(j["metadata"]["uid"] != job["metadata"]["uid"])

    await eventually(replaced, timeout=60)


# ------------------------------------------------------------------------------------------------- runs
async def test_job_failure_is_reported_and_a_spec_change_reruns(client: Client, namespace: str) -> None:
    await create(client, namespace, manifest("Dataset", "flaky", {"image": "example.com/fail-loader:1"}))
    obj = await wait_condition(client, Kind.DATASET, namespace, "flaky", "Complete", "False", reason="JobFailed")
    assert condition(obj, "Ready")["reason"] == "JobFailed"

    async def job_failed_events() -> list[dict[str, Any]]:  # Events are posted asynchronously
        return [e for e in await events_for(client, namespace, "flaky") if e["reason"] == "JobFailed"]

    events = await eventually(job_failed_events, timeout=30)
    assert events[0]["type"] == "Warning"
    first = await client.get(k8s.JOBS, "flaky-data-loader", namespace)
    # Fix the image: the failed run is replaced by a new one (SpecChanged), which completes.
    await patch(client, Kind.DATASET, namespace, "flaky", {"spec": {"image": "example.com/loader:2"}})
    await wait_condition(client, Kind.DATASET, namespace, "flaky", "Ready", "True", timeout=90)
    second = await client.get(k8s.JOBS, "flaky-data-loader", namespace)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["metadata"]["labels"]["substratus.ai/run"] != first["metadata"]["labels"]["substratus.ai/run"]


async def test_params_change_on_a_ready_model_reruns_it(client: Client, namespace: str) -> None:
    await create(client, namespace, manifest("Model", "tuned", {"image": "example.com/trainer:1", "params": {"lr": 1}}))
    await wait_condition(client, Kind.MODEL, namespace, "tuned", "Ready", "True")
    first = await client.get(k8s.JOBS, "tuned-modeller", namespace)
    await patch(client, Kind.MODEL, namespace, "tuned", {"spec": {"params": {"lr": 2}}})

    async def second_run_done() -> dict[str, Any] | None:
        obj = await get(client, Kind.MODEL, namespace, "tuned")
        done = obj["status"]["ready"] and condition(obj, "Complete").get("observedGeneration") == 2
        return obj if done else None

    obj = await eventually(second_run_done, timeout=90)
    # The re-run went through Complete=False/SpecChanged (too quick to poll with an instant kubelet: the
    # transition is in the Events).
    events = await events_for(client, namespace, "tuned")
    assert any(e["reason"] == "SpecChanged" for e in events), [e["reason"] for e in events]
    second = await client.get(k8s.JOBS, "tuned-modeller", namespace)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    cm = await client.get(k8s.CONFIGMAPS, "tuned-model-params", namespace)
    assert json.loads(cm["data"]["params.json"]) == {"lr": 2}
    assert condition(obj, "Complete")["observedGeneration"] == obj["metadata"]["generation"] == 2


# ------------------------------------------------------------------------------------------------- notebook
async def test_notebook_suspend_deletes_the_pod_and_resume_recreates_it(client: Client, namespace: str) -> None:
    await create(client, namespace, manifest("Notebook", "nb", {"image": "example.com/jupyter:1"}))
    await wait_condition(client, Kind.NOTEBOOK, namespace, "nb", "Ready", "True")
    pod = await client.get(k8s.PODS, "nb-notebook", namespace)
    await patch(client, Kind.NOTEBOOK, namespace, "nb", {"spec": {"suspend": True}})
    await wait_condition(client, Kind.NOTEBOOK, namespace, "nb", "Serving", "False", reason="Suspended")

    async def pod_gone() -> bool:
        try:
            await client.get(k8s.PODS, "nb-notebook", namespace)
        except NotFound:
            return True
        return False

    await eventually(pod_gone, timeout=30)
    # The Pod's token Secret went with it; the resumed Pod has a new one (a token per Pod).
    with pytest.raises(NotFound):
        await client.get(k8s.SECRETS, token_secret_of(pod), namespace)
    await patch(client, Kind.NOTEBOOK, namespace, "nb", {"spec": {"suspend": False}})
    await wait_condition(client, Kind.NOTEBOOK, namespace, "nb", "Ready", "True", timeout=60)
    again = await client.get(k8s.PODS, "nb-notebook", namespace)
    assert again["metadata"]["uid"] != pod["metadata"]["uid"]
    assert token_secret_of(again) != token_secret_of(pod)
    await client.get(k8s.SECRETS, token_secret_of(again), namespace)


async def test_a_notebook_pod_is_isolated_by_its_own_network_policy(client: Client, namespace: str) -> None:
    """--notebook-network-policy deny-ingress (this stack's setting): a NetworkPolicy owned by the Notebook whose
    selector picks exactly its Pod (not a lookalike's, not the builder's), ingress only, no rule admitting
    anything. (Enforcement is the network plugin's; the real node's bridge plugin does not enforce.)"""
    obj = await create(client, namespace, manifest("Notebook", "nb", {"image": "example.com/j:1"}))
    await create(client, namespace, manifest("Notebook", "nb-2", {"image": "example.com/j:1"}))
    await wait_condition(client, Kind.NOTEBOOK, namespace, "nb", "Ready", "True", timeout=60)
    await wait_condition(client, Kind.NOTEBOOK, namespace, "nb-2", "Ready", "True", timeout=60)
    policy = await client.get(k8s.NETWORKPOLICIES, "nb-notebook", namespace)
    assert policy["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert not policy["spec"].get("ingress")
    selector = ",".join(f"{k}={v}" for k, v in policy["spec"]["podSelector"]["matchLabels"].items())
    picked = (await client.list(k8s.PODS, namespace, label_selector=selector))["items"]
    assert [p["metadata"]["name"] for p in picked] == ["nb-notebook"]
    # Suspended, the policy stays (the next Pod is isolated from its start); it goes with the Notebook.
    await patch(client, Kind.NOTEBOOK, namespace, "nb", {"spec": {"suspend": True}})
    await wait_condition(client, Kind.NOTEBOOK, namespace, "nb", "Serving", "False", reason="Suspended")
    assert (await client.get(k8s.NETWORKPOLICIES, "nb-notebook", namespace))["metadata"]["uid"] == (
        policy["metadata"]["uid"]
    )


def token_secret_of(pod: dict[str, Any]) -> str:
    return str(env(container(pod["spec"], "notebook"))["NOTEBOOK_TOKEN"]["secretKeyRef"]["name"])


async def our_secrets(client: Client, namespace: str) -> list[str]:
    items = await client.list(k8s.SECRETS, namespace, label_selector="app.kubernetes.io/managed-by=substratus")
    return sorted(s["metadata"]["name"] for s in items["items"])


async def test_a_planted_notebook_token_secret_is_never_used(client: Client, namespace: str) -> None:
    """Issue 13 §7: a co-tenant who can create Secrets (but not read them) plants `<nb>-notebook-token`, the
    name the controller once used, with a token they know. The Pod's Secret has a name drawn when it was
    created, so nothing planted beforehand can be it; the planted Secret is not touched."""
    planted = await client.create(k8s.SECRETS, {
        "metadata": {"name": "nb-notebook-token", "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "substratus"}},
        "stringData": {"token": "known-to-the-co-tenant"}})  # fmt: skip
    obj = await create(client, namespace, manifest("Notebook", "nb", {"image": "example.com/j:1"}))
    await wait_condition(client, Kind.NOTEBOOK, namespace, "nb", "Ready", "True", timeout=60)
    pod = await client.get(k8s.PODS, "nb-notebook", namespace)
    name = token_secret_of(pod)
    assert name != "nb-notebook-token"
    assert is_notebook_token_secret_name("nb", name), name
    ours = await client.get(k8s.SECRETS, name, namespace)
    assert ours["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert base64.b64decode(ours["data"]["token"]) != b"known-to-the-co-tenant"
    now = await client.get(k8s.SECRETS, "nb-notebook-token", namespace)
    assert now["metadata"]["resourceVersion"] == planted["metadata"]["resourceVersion"]
    assert not now["metadata"].get("ownerReferences")
    assert await our_secrets(client, namespace) == sorted([name, "nb-notebook-token"])


async def test_a_pod_the_api_server_refuses_leaves_no_token_secrets(
    stack: Stack, client: Client, namespace: str
) -> None:
    """A Pod write refused every time (a ResourceQuota of 0 pods: 403) is retried with backoff; each attempt's
    token Secret is deleted again, so retries do not pile up Secrets."""
    quota = {"metadata": {"name": "no-pods", "namespace": namespace}, "spec": {"hard": {"pods": "0"}}}
    await client.create(RESOURCEQUOTAS, quota)

    async def enforced() -> bool:  # the API server's quota admission has seen the quota
        probe = {
            "metadata": {"name": "probe", "namespace": namespace},
            "spec": {"automountServiceAccountToken": False, "containers": [{"name": "c", "image": "example.com/p:1"}]},
        }
        try:
            await client.create(k8s.PODS, probe)
        except Forbidden:
            return True
        await client.delete(k8s.PODS, "probe", namespace)
        return False

    await eventually(enforced, timeout=30)
    refused = metric_sum(stack.metrics(), 'rest_client_requests_total{code="403"', "PATCH")
    await create(client, namespace, manifest("Notebook", "nb", {"image": "example.com/j:1"}))

    async def retried() -> bool:  # the positive signal: the controller tried (and was refused) five times
        return metric_sum(stack.metrics(), 'rest_client_requests_total{code="403"', "PATCH") >= refused + 5

    await eventually(retried, timeout=60)
    with pytest.raises(NotFound):
        await client.get(k8s.PODS, "nb-notebook", namespace)
    await patch(client, Kind.NOTEBOOK, namespace, "nb", {"spec": {"suspend": True}})  # stop the attempts
    await wait_condition(client, Kind.NOTEBOOK, namespace, "nb", "Serving", "False", reason="Suspended")
    assert await our_secrets(client, namespace) == []


# ------------------------------------------------------------------------------------------------- bad input
async def test_missing_dependency_reports_not_found_and_recovers(client: Client, namespace: str) -> None:
    await create(
        client, namespace, manifest("Model", "waits", {"image": "example.com/t:1", "dataset": {"name": "later"}})
    )
    obj = await wait_condition(client, Kind.MODEL, namespace, "waits", "Complete", "False", reason="DatasetNotFound")
    assert "later" in condition(obj, "Complete")["message"]
    with pytest.raises(NotFound):
        await client.get(k8s.JOBS, "waits-modeller", namespace)
    await create(client, namespace, manifest("Dataset", "later", {"image": "example.com/loader:1"}))
    await wait_condition(client, Kind.MODEL, namespace, "waits", "Ready", "True", timeout=60)


async def test_unknown_gpu_type_reports_unsupported_gpu(client: Client, namespace: str) -> None:
    await create(client, namespace, manifest("Model", "gpu", {
        "image": "example.com/t:1", "resources": {"gpu": {"type": "nvidia-l4", "count": 1}},
    }))  # fmt: skip
    obj = await wait_condition(client, Kind.MODEL, namespace, "gpu", "Ready", "False", reason="UnsupportedGPU")
    assert "nvidia-l4" in condition(obj, "Ready")["message"]
    events = await eventually(lambda: events_for(client, namespace, "gpu"))
    assert any(e["reason"] == "UnsupportedGPU" and e["type"] == "Warning" for e in events)
    await asyncio.sleep(2)
    assert (await get(client, Kind.MODEL, namespace, "gpu"))["metadata"]["resourceVersion"] == obj["metadata"][
        "resourceVersion"
    ], "no retry loop rewriting the status"
    # A type the nodes have works.
    await patch(client, Kind.MODEL, namespace, "gpu", {"spec": {"resources": {"gpu": {"type": "nvidia-t4"}}}})
    await wait_condition(client, Kind.MODEL, namespace, "gpu", "Ready", "True", timeout=60)
    job = await client.get(k8s.JOBS, "gpu-modeller", namespace)
    model_c = container(job["spec"]["template"]["spec"], "model")
    assert model_c["resources"]["limits"]["nvidia.com/gpu"] == "1"


async def test_malformed_secret_reference_reports_invalid_spec(client: Client, namespace: str) -> None:
    await create(client, namespace, manifest("Dataset", "bad-env", {
        "image": "example.com/loader:1", "env": {"TOKEN": "prefix ${{ secrets.hf.token }}"},
    }))  # fmt: skip
    obj = await wait_condition(client, Kind.DATASET, namespace, "bad-env", "Ready", "False", reason="InvalidSpec")
    assert "spec.env.TOKEN" in condition(obj, "Ready")["message"]
    with pytest.raises(NotFound):
        await client.get(k8s.JOBS, "bad-env-data-loader", namespace)


@pytest.mark.parametrize("name", [".", "..", "..x"])
async def test_env_names_the_api_server_rejects_are_invalid_specs(client: Client, namespace: str, name: str) -> None:
    """Security model (README): the CRD's pattern admits these names, the API server rejects them in a pod (shown here,
    so that the rule goes if the server ever accepts them); the Dataset says InvalidSpec once, no Job."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "automountServiceAccountToken": False,  # a fresh namespace may not have its token yet
            "containers": [{"name": "c", "image": "example.com/x:1", "env": [{"name": name, "value": "v"}]}],
        },
    }
    with pytest.raises(Invalid):
        await client.create(k8s.PODS, pod)
    await create(client, namespace, manifest("Dataset", "dotty", {"image": "example.com/loader:1", "env": {name: "v"}}))
    obj = await wait_condition(client, Kind.DATASET, namespace, "dotty", "Ready", "False", reason="InvalidSpec")
    assert f"spec.env.{name}" in condition(obj, "Ready")["message"]
    with pytest.raises(NotFound):
        await client.get(k8s.JOBS, "dotty-data-loader", namespace)


async def test_deleting_a_parent_garbage_collects_its_children(client: Client, namespace: str) -> None:
    await create(client, namespace, manifest("Server", "srv", {"image": "example.com/s:1", "model": {"name": "m"}}))
    await create(client, namespace, manifest("Model", "m", {"image": "example.com/m:1"}))
    await wait_condition(client, Kind.SERVER, namespace, "srv", "Ready", "True", timeout=60)
    await client.get(k8s.DEPLOYMENTS, "srv-server", namespace)
    await client.delete(RESOURCE_OF[Kind.SERVER], "srv", namespace)

    async def gone() -> bool:
        for res, name in ((k8s.DEPLOYMENTS, "srv-server"), (k8s.SERVICES, "srv-server"),
                          (k8s.CONFIGMAPS, "srv-server-params")):  # fmt: skip
            try:
                await client.get(res, name, namespace)
                return False
            except NotFound:
                pass
        return True

    await eventually(gone, timeout=90)
    assert (await client.get(k8s.SERVICEACCOUNTS, SA_MODEL_SERVER, namespace))["metadata"]["name"] == SA_MODEL_SERVER


async def test_a_namespaces_last_object_going_releases_its_service_accounts(client: Client, namespace: str) -> None:
    """Issue 13 §1 (fast tier): while any object is left the shared workload ServiceAccounts stay; when the last
    one goes the controller deletes its own (and, on a cloud, unbinds them first: tests/integration/cloud), and
    a user's ServiceAccount, even one labelled as ours under another name, is never touched."""
    user_sa = await client.create(k8s.SERVICEACCOUNTS, {"metadata": {"name": "notebook", "namespace": namespace}})
    lookalike = await client.create(k8s.SERVICEACCOUNTS, {"metadata": {
        "name": "substratus-helper", "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": "substratus"}}})  # fmt: skip
    await create(client, namespace, manifest("Model", "m", {"image": "example.com/m:1"}))
    await create(client, namespace, manifest("Server", "srv", {"image": "example.com/s:1", "model": {"name": "m"}}))
    await wait_condition(client, Kind.SERVER, namespace, "srv", "Ready", "True", timeout=60)
    ours = {SA_MODELLER, SA_MODEL_SERVER}
    for name in ours:
        await client.get(k8s.SERVICEACCOUNTS, name, namespace)

    async def accounts() -> set[str]:
        listed = await client.list(k8s.SERVICEACCOUNTS, namespace)
        return {sa["metadata"]["name"] for sa in listed["items"]}

    await client.delete(RESOURCE_OF[Kind.SERVER], "srv", namespace)
    await eventually(lambda: _gone(client, k8s.DEPLOYMENTS, "srv-server", namespace), timeout=90)
    assert ours <= await accounts(), "the Model is still there: its accounts stay"
    await client.delete(RESOURCE_OF[Kind.MODEL], "m", namespace)

    async def released() -> bool:
        return not (ours & await accounts())

    await eventually(released, timeout=60)
    for before in (user_sa, lookalike):
        now = await client.get(k8s.SERVICEACCOUNTS, before["metadata"]["name"], namespace)
        assert now["metadata"]["uid"] == before["metadata"]["uid"]
        # (not resourceVersion: the API server's token controller adds a token Secret to every account)
        for field in ("labels", "annotations", "ownerReferences"):
            assert now["metadata"].get(field) == before["metadata"].get(field), field


async def _gone(client: Client, resource: Any, name: str, namespace: str) -> bool:
    try:
        await client.get(resource, name, namespace)
    except NotFound:
        return True
    return False


# ------------------------------------------------------------------------------------------------- trust
async def test_a_child_name_taken_by_another_object_is_a_conflict_never_a_takeover(
    stack: Stack, client: Client, namespace: str
) -> None:
    """Security model (README): an unlabelled Service and a labelled-but-unowned ConfigMap hold the Server's child
    names. The Server reports ChildConflict naming both, with a Warning Event; neither object is touched, nothing
    else is written, and the reconcile is not retried in a loop. Once the names are free, it recovers."""
    victim_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "taken-server", "namespace": namespace},
        "spec": {"selector": {"app": "victim"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    victim_cm = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "taken-server-params", "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "substratus"}},
        "data": {"params.json": "{\"victim\": true}"},
    }  # fmt: skip
    service = await client.create(k8s.SERVICES, victim_service)
    cm = await client.create(k8s.CONFIGMAPS, victim_cm)
    await create(client, namespace, manifest("Model", "m", {"image": "example.com/m:1"}))
    await wait_condition(client, Kind.MODEL, namespace, "m", "Ready", "True", timeout=60)
    await create(client, namespace, manifest("Server", "taken", {"image": "example.com/s:1", "model": {"name": "m"}}))
    obj = await wait_condition(client, Kind.SERVER, namespace, "taken", "Serving", "False", reason="ChildConflict")
    message = condition(obj, "Serving")["message"]
    assert "Service taken-server" in message, message
    assert "ConfigMap taken-server-params" in message, message
    events = await eventually(lambda: events_for(client, namespace, "taken"))
    seen = [(e["reason"], e["type"], e.get("note")) for e in events]
    assert ("ChildConflict", "Warning") in [r[:2] for r in seen], seen
    await asyncio.sleep(3)
    after = await get(client, Kind.SERVER, namespace, "taken")
    assert after["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"], "no retry loop"
    for res, before in ((k8s.SERVICES, service), (k8s.CONFIGMAPS, cm)):
        now = await client.get(res, before["metadata"]["name"], namespace)
        assert now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], f"{res} was written"
        assert not now["metadata"].get("ownerReferences"), now["metadata"]
    with pytest.raises(NotFound):
        await client.get(k8s.DEPLOYMENTS, "taken-server", namespace)

    # The names are freed: the next reconcile (here prompted by an annotation) serves.
    await client.delete(k8s.SERVICES, "taken-server", namespace)
    await client.delete(k8s.CONFIGMAPS, "taken-server-params", namespace)
    await patch(client, Kind.SERVER, namespace, "taken", {"metadata": {"annotations": {"touched": "1"}}})
    await wait_condition(client, Kind.SERVER, namespace, "taken", "Ready", "True", timeout=60)
    service = await client.get(k8s.SERVICES, "taken-server", namespace)
    assert service["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]


# ------------------------------------------------------------------------------------------------- no-op resync
async def idle(metrics: str) -> bool:
    """Every controller's queue is empty and none of its workers is reconciling."""
    return all(
        not metric_sum(metrics, f'workqueue_depth{{name="{kind.singular}"')
        and not metric_sum(metrics, f'controller_runtime_active_workers{{controller="{kind.singular}"')
        for kind in Kind
    )


async def test_restart_resync_of_ready_objects_writes_nothing(stack: Stack, client: Client, namespace: str) -> None:
    docs = [d for f in sorted((ROOT / "examples").rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    for doc in docs:
        await create(client, namespace, doc)
    for doc in docs:
        await wait_condition(client, Kind(doc["kind"]), namespace, doc["metadata"]["name"], "Ready", "True", timeout=90)
    await eventually(lambda: idle(stack.metrics()), timeout=30)  # the last status writes have landed

    before = await resource_versions(client, namespace)
    await stack.stop_controller()
    await stack.start_controller()  # a fresh process relists everything and reconciles every object

    # Drained, by a positive signal (issue 15 §5): each controller has reconciled at least as many times as
    # there are objects of its kind in the whole cluster (a fresh process reconciles every one, this
    # namespace's included), its queue is empty and no reconcile is in flight.
    existing = {kind: len((await client.list(RESOURCE_OF[kind], None))["items"]) for kind in Kind}

    async def drained() -> bool:
        text = stack.metrics()
        done = all(
            metric_sum(text, f'controller_runtime_reconcile_total{{controller="{kind.singular}"') >= count
            for kind, count in existing.items()
        )
        return done and await idle(text)

    await eventually(drained, timeout=60)
    assert metric_sum(stack.metrics(), "rest_client_requests_total{", *WRITES) == 0
    assert await resource_versions(client, namespace) == before
