"""Least privilege, proven: the controller runs as its own ServiceAccount with exactly the RBAC from manifests/.

A dedicated system (control plane with RBAC and the OwnerReferencesPermissionEnforcement admission plugin,
kube-controller-manager, simulated kubelet) runs no admin controller. The ClusterRole, leader-election Role,
bindings and ServiceAccount come from `kubectl kustomize manifests/overlays/local`; the controller gets a
token of that ServiceAccount from the TokenRequest API.

1. With exactly those rules, a scenario touching every permission completes with no denial in the log.
2. For every rule, a controller whose role lacks just that rule (bound in its own namespace, watching only it)
   runs the same scenario and is denied something: no rule is unused.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.conftest import RULES
from substratus_controller.constants import WORKLOAD_SERVICE_ACCOUNTS, Kind
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import NotFound
from substratus_controller.runtime.resource import Resource
from substratus_controller.testing.stack import SIMULATED_REGISTRY, ControllerProcess, Stack

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
DENIED = re.compile(r'forbidden|"code":\s*403', re.IGNORECASE)
RESOURCE_OF_KIND = {
    "Namespace": k8s.NAMESPACES,
    "ServiceAccount": k8s.SERVICEACCOUNTS,
    "ClusterRole": CLUSTER_ROLES,
    "ClusterRoleBinding": CLUSTER_ROLE_BINDINGS,
    "Role": ROLES,
    "RoleBinding": ROLE_BINDINGS,
}


def manifest_rbac() -> dict[str, dict[str, Any]]:
    """The RBAC objects (and their ServiceAccount and Namespace) of the local overlay, by kind."""
    import subprocess

    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests" / "overlays" / "local")],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(out) if d and d["kind"] in RESOURCE_OF_KIND]
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == set(RESOURCE_OF_KIND), set(by_kind)
    return by_kind


async def token_kubeconfig(stack: Stack, namespace: str, sa: str, path: Path) -> Path:
    assert stack.client is not None
    assert stack.cp is not None
    answer = await stack.client.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}},
    )
    path.write_text(json.dumps(stack.cp.kubeconfig_dict(token=answer["status"]["token"], user=sa)))
    return path


@pytest.fixture(scope="module")
async def rbac_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    stack = Stack(kubelet_rules=RULES, workdir=tmp_path_factory.mktemp("rbac"))
    await stack.start(with_controller=False)
    assert stack.client is not None
    for obj in manifest_rbac().values():
        await stack.client.create(RESOURCE_OF_KIND[obj["kind"]], obj)
    yield stack
    await stack.stop()


# ------------------------------------------------------------------------------------------------- scenario
async def _until(check: Callable[[], Awaitable[bool]], timeout: float, stop: asyncio.Event) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            if await check():
                return True
        except NotFound:
            pass
        await asyncio.sleep(0.1)
    return False


async def scenario(client: Client, ns: str, stop: asyncio.Event, timeout: float = 30) -> str | None:
    """Exercise every permission; return None when complete, else the step that did not finish."""

    def obj(kind: str, name: str, spec: dict[str, Any], **annotations: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": ns}
        if annotations:
            meta["annotations"] = annotations
        return {"apiVersion": "substratus.ai/v1", "kind": kind, "metadata": meta, "spec": spec}

    async def status(kind: Kind, name: str) -> dict[str, Any]:
        return (await client.get(RESOURCE_OF[kind], name, ns)).get("status") or {}

    async def ready(kind: Kind, name: str) -> bool:
        return bool((await status(kind, name)).get("ready"))

    async def serving_reason(name: str, reason: str) -> bool:
        conds = (await status(Kind.NOTEBOOK, name)).get("conditions") or ()
        return any(c["type"] == "Serving" and c["reason"] == reason for c in conds)

    async def suspend(value: bool) -> None:
        await client.patch(RESOURCE_OF[Kind.NOTEBOOK], "nb", {"spec": {"suspend": value}}, ns)

    steps: list[tuple[str, Callable[[], Awaitable[Any]], Callable[[], Awaitable[bool]]]] = [
        ("git-built dataset ready",  # build Job, spec.image, loader Job, SAs, ConfigMap, status, events
         lambda: client.create(RESOURCE_OF[Kind.DATASET], obj("Dataset", "data", {
             "build": {"git": {"url": "https://github.com/example/loader"}}, "params": {"n": 1}})),
         lambda: ready(Kind.DATASET, "data")),
        ("trained model ready",
         lambda: asyncio.gather(
             client.create(RESOURCE_OF[Kind.MODEL], obj("Model", "base", {"image": "example.com/m:1"})),
             client.create(RESOURCE_OF[Kind.MODEL], obj("Model", "tuned", {
                 "image": "example.com/t:1", "model": {"name": "base"}, "dataset": {"name": "data"}}))),
         lambda: ready(Kind.MODEL, "tuned")),
        ("server ready",  # Deployment, Service
         lambda: client.create(RESOURCE_OF[Kind.SERVER], obj("Server", "srv", {
             "image": "example.com/s:1", "model": {"name": "tuned"}})),
         lambda: ready(Kind.SERVER, "srv")),
        ("notebook ready",  # PVC, token Secret, Pod
         lambda: client.create(RESOURCE_OF[Kind.NOTEBOOK], obj("Notebook", "nb", {"image": "example.com/j:1"},
                                                                **{"substratus.ai/notebook-storage": "1Gi"})),
         lambda: ready(Kind.NOTEBOOK, "nb")),
        ("notebook suspended", lambda: suspend(True), lambda: serving_reason("nb", "Suspended")),  # Pod delete
        ("notebook resumed", lambda: suspend(False), lambda: ready(Kind.NOTEBOOK, "nb")),
        ("notebook suspended again", lambda: suspend(True), lambda: serving_reason("nb", "Suspended")),  # event patch
        ("dataset re-run",  # Job delete
         lambda: client.patch(RESOURCE_OF[Kind.DATASET], "data", {"spec": {"params": {"n": 2}}}, ns),
         lambda: _rerun_done(client, ns)),
        ("namespace released",  # ServiceAccount delete, once the last object is gone
         lambda: _delete_all(client, ns),
         lambda: _no_workload_accounts(client, ns)),
    ]  # fmt: skip
    for name, act, done in steps:
        await act()
        if not await _until(done, timeout, stop):
            return name
    return None


async def _delete_all(client: Client, ns: str) -> None:
    for kind, name in ((Kind.SERVER, "srv"), (Kind.NOTEBOOK, "nb"), (Kind.MODEL, "tuned"), (Kind.MODEL, "base"),
                       (Kind.DATASET, "data")):  # fmt: skip
        await client.delete(RESOURCE_OF[kind], name, ns)


async def _no_workload_accounts(client: Client, ns: str) -> bool:
    names = {sa["metadata"]["name"] for sa in (await client.list(k8s.SERVICEACCOUNTS, ns))["items"]}
    return not (names & WORKLOAD_SERVICE_ACCOUNTS)


async def _rerun_done(client: Client, ns: str) -> bool:
    obj = await client.get(RESOURCE_OF[Kind.DATASET], "data", ns)
    conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or ()}
    complete = conds.get("Complete", {})
    return bool(
        complete.get("status") == "True" and complete.get("observedGeneration") == obj["metadata"]["generation"]
    )


async def new_namespace(client: Client, prefix: str) -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await client.create(k8s.NAMESPACES, {"metadata": {"name": ns}})
    deadline = time.monotonic() + 30
    while True:  # ServiceAccount admission needs the namespace's default ServiceAccount and its token
        try:
            if (await client.get(k8s.SERVICEACCOUNTS, "default", ns)).get("secrets"):
                return ns
        except NotFound:
            pass
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------------------------- tests
async def test_the_manifest_role_runs_the_whole_scenario_without_a_denial(rbac_stack: Stack, tmp_path: Path) -> None:
    client = rbac_stack.client
    assert client is not None
    kubeconfig = await token_kubeconfig(rbac_stack, "substratus", "substratus-controller", tmp_path / "kubeconfig")
    log = tmp_path / "controller.log"
    controller = ControllerProcess(
        kubeconfig, log=log,
        args=["--leader-elect", "--leader-election-namespace=substratus",
              f"--artifact-bucket-url=file://{rbac_stack.workdir / 'artifacts'}"],
    )  # fmt: skip
    await controller.start()
    try:
        ns = await new_namespace(client, "rbac")
        unfinished = await scenario(client, ns, asyncio.Event())
        assert unfinished is None, f"stuck at {unfinished!r}:\n{log.read_text()[-3000:]}"
        text = log.read_text()
        assert not DENIED.search(text), [line for line in text.splitlines() if DENIED.search(line)][:5]
        lease = await client.get(k8s.LEASES, "df3bdd2d.substratus.ai", "substratus")
        assert lease["spec"]["holderIdentity"]
    finally:
        await controller.stop()


def _variants() -> list[tuple[str, str, int]]:
    rbac = manifest_rbac()
    return [("ClusterRole", _describe(rule), i) for i, rule in enumerate(rbac["ClusterRole"]["rules"])] + [
        ("Role", _describe(rule), i) for i, rule in enumerate(rbac["Role"]["rules"])
    ]


def _describe(rule: dict[str, Any]) -> str:
    return f"{','.join(rule['resources'])}:{','.join(rule['verbs'])}"


async def run_without(stack: Stack, kind: str, index: int | None, workdir: Path) -> tuple[bool, str]:
    """A controller whose `kind` lacks rule `index` (None: nothing removed), scoped to a namespace of its own;
    returns (denied?, what happened)."""
    client = stack.client
    assert client is not None
    rbac = manifest_rbac()
    ns = await new_namespace(client, f"minus-{kind.lower()}-{'none' if index is None else index}")
    sa = "controller"
    await client.create(k8s.SERVICEACCOUNTS, {"metadata": {"name": sa, "namespace": ns}})
    cluster_role = copy.deepcopy(rbac["ClusterRole"])
    role = copy.deepcopy(rbac["Role"])
    if index is not None:
        (cluster_role if kind == "ClusterRole" else role)["rules"].pop(index)
    cluster_role["metadata"] = {"name": f"without-{ns}"}
    role["metadata"] = {"name": "leader-election", "namespace": ns}
    await client.create(CLUSTER_ROLES, cluster_role)
    await client.create(ROLES, role)
    for ref_kind, ref_name in (("ClusterRole", f"without-{ns}"), ("Role", "leader-election")):
        await client.create(ROLE_BINDINGS, {
            "metadata": {"name": ref_name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref_name},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        })  # fmt: skip
    kubeconfig = await token_kubeconfig(stack, ns, sa, workdir / f"{ns}.kubeconfig")
    # Two replicas when the leader-election Role is under test: only a standby watches the Lease.
    replicas = 2 if kind == "Role" else 1
    logs = [workdir / f"{ns}-{r}.log" for r in range(replicas)]
    controllers = [
        ControllerProcess(
            kubeconfig,
            log=log,
            args=[
                f"--namespace={ns}",
                "--leader-elect",
                f"--leader-election-namespace={ns}",
                f"--artifact-bucket-url=file://{stack.workdir / 'artifacts'}",
                # bound in its namespace only, it cannot read kube-public/local-registry-hosting: a
                # namespaced install names its registry (README, Local clusters)
                f"--registry-url={SIMULATED_REGISTRY}",
            ],
        )
        for log in logs
    ]

    def denied() -> bool:
        return any(DENIED.search(log.read_text(errors="replace")) for log in logs if log.exists())

    stop = asyncio.Event()
    for controller in controllers:
        await controller.start(wait_ready=False)
    try:
        run = asyncio.create_task(scenario(client, ns, stop, timeout=20))
        while not run.done():
            if denied():
                stop.set()
                break
            await asyncio.sleep(0.2)
        unfinished = await run
        return denied(), f"denied={denied()} unfinished={unfinished!r}"
    finally:
        for controller in controllers:
            await controller.stop()


async def test_every_rule_is_needed(rbac_stack: Stack, tmp_path: Path) -> None:
    # Control: the same namespaced setup with no rule removed completes without a denial, so a denial in a
    # variant below is caused by the rule it lacks.
    denied, detail = await run_without(rbac_stack, "ClusterRole", None, tmp_path)
    assert (denied, detail) == (False, "denied=False unfinished=None"), detail
    variants = _variants()
    assert len(variants) >= 20
    results: dict[str, str] = {}
    unused: list[str] = []
    for batch in range(0, len(variants), 4):  # a few at a time: each runs a controller process
        chunk = variants[batch : batch + 4]
        outcomes = await asyncio.gather(*(run_without(rbac_stack, kind, i, tmp_path) for kind, _, i in chunk))
        for (kind, what, _), (denied, detail) in zip(chunk, outcomes, strict=True):
            results[f"{kind} {what}"] = detail
            if not denied:
                unused.append(f"{kind} {what}: {detail}")
    assert not unused, "rules whose removal breaks nothing:\n" + "\n".join(unused)


# ------------------------------------------------------------------------------------------------- components
COMPONENT = ROOT / "manifests" / "optional" / "notebook-network-policy"


def component_flag() -> str:
    """The flag the component adds to the controller's args (its one JSON patch)."""
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    (patch,) = kustomization["patches"]
    (op,) = yaml.safe_load(patch["patch"])
    assert op["path"] == "/spec/template/spec/containers/0/args/-"
    return str(op["value"])


async def test_the_network_policy_component_grants_what_its_option_needs(rbac_stack: Stack, tmp_path: Path) -> None:
    """manifests/optional/notebook-network-policy: the controller as the manifest's ServiceAccount, with the
    component's flag, is denied on NetworkPolicies with the base role alone, and with the component's role
    bound too isolates a notebook with no denial."""
    client = rbac_stack.client
    assert client is not None
    flag = component_flag()
    assert flag == "--notebook-network-policy=deny-ingress"
    kubeconfig = await token_kubeconfig(rbac_stack, "substratus", "substratus-controller", tmp_path / "kubeconfig")
    component = [d for d in yaml.safe_load_all((COMPONENT / "network-policy-role.yaml").read_text()) if d]
    assert [d["kind"] for d in component] == ["ClusterRole", "ClusterRoleBinding"]

    async def run(bound: bool) -> tuple[bool, bool]:
        """(denied?, isolated?) of one controller run in a namespace of its own."""
        ns = await new_namespace(client, f"netpol-{'with' if bound else 'without'}")
        log = tmp_path / f"{ns}.log"
        controller = ControllerProcess(kubeconfig, log=log, args=[
            f"--namespace={ns}", flag, f"--artifact-bucket-url=file://{rbac_stack.workdir / 'artifacts'}"])  # fmt: skip
        await controller.start(wait_ready=False)
        try:
            nb = {"apiVersion": "substratus.ai/v1", "kind": "Notebook",
                  "metadata": {"name": "nb", "namespace": ns}, "spec": {"image": "example.com/j:1"}}  # fmt: skip
            await client.create(RESOURCE_OF[Kind.NOTEBOOK], nb)

            async def isolated() -> bool:
                await client.get(k8s.NETWORKPOLICIES, "nb-notebook", ns)
                status = (await client.get(RESOURCE_OF[Kind.NOTEBOOK], "nb", ns)).get("status") or {}
                return bool(status.get("ready"))

            def denied() -> bool:
                return log.exists() and bool(DENIED.search(log.read_text(errors="replace")))

            async def finished() -> bool:  # denied, or isolated and Ready
                return denied() or await isolated()

            done = await _until(finished, 30, asyncio.Event())
            return denied(), done and not denied()
        finally:
            await controller.stop()

    assert await run(bound=False) == (True, False)
    for obj in component:
        await client.create(RESOURCE_OF_KIND[obj["kind"]], obj)
    try:
        assert await run(bound=True) == (False, True)
    finally:
        for obj in reversed(component):
            await client.delete(RESOURCE_OF_KIND[obj["kind"]], obj["metadata"]["name"])
