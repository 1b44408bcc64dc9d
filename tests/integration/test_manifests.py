"""The kustomize manifests: each overlay applies to a real API server; the controller's pod is "restricted"."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from substratus_controller.cli import build_parser
from substratus_controller.plugins.uploadorigin import origin, parse_origins
from substratus_controller.settings import resolve
from substratus_controller.testing import ControlPlane
from substratus_controller.testing.controlplane import kubectl_clients
from tests.conftest import ROOT
from tests.pss import restricted_violations

pytestmark = pytest.mark.integration
OVERLAYS = ("local", "gcp", "aws")


def kustomize(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests" / "overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    with ControlPlane() as cp:
        yield cp


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_applies_with_server_dry_run_and_for_real(plane: ControlPlane, overlay: str) -> None:
    """`kubectl apply -k manifests/overlays/<cloud>`, then a server-side dry run of the same (an apply of an
    installed operator must be clean too; a dry run cannot go first because it does not create the namespace
    the other objects need). --validate=false only because this 1.20 server's OpenAPI lacks the CRDs' CEL field
    (x-kubernetes-validations), which 1.25+ servers accept."""
    env = dict(os.environ, KUBECONFIG=str(plane.kubeconfig))
    path = str(ROOT / "manifests" / "overlays" / overlay)
    for extra in ([], ["--dry-run=server"]):
        proc = subprocess.run(["kubectl", "apply", "-k", path, "--validate=false", *extra],
                              capture_output=True, text=True, env=env, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    got = plane.request("/apis/apps/v1/namespaces/substratus/deployments/substratus-controller")
    config = plane.request("/api/v1/namespaces/substratus/configmaps/substratus-controller")
    assert config["data"]["CLOUD"] == overlay
    assert got["spec"]["template"]["spec"]["serviceAccountName"] == "substratus-controller"
    for crd in ("datasets", "models", "notebooks", "servers"):
        assert plane.request(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}.substratus.ai")


@pytest.mark.parametrize("overlay", ["gcp", "aws"])
def test_the_controller_pod_is_restricted_with_a_read_only_root(overlay: str) -> None:
    docs = kustomize(overlay)
    deployment = find(docs, "Deployment", "substratus-controller")
    spec = deployment["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []
    controller = spec["containers"][0]
    assert controller["securityContext"]["readOnlyRootFilesystem"] is True
    assert controller["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert controller["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(controller["resources"]) == {"requests", "limits"}
    assert deployment["spec"]["replicas"] == 2
    assert "--leader-elect" in controller["args"]
    assert find(docs, "Namespace", "substratus")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )


def test_the_local_overlay_breaks_restricted_only_for_the_artifact_directory() -> None:
    docs = kustomize("local")
    spec = find(docs, "Deployment", "substratus-controller")["spec"]["template"]["spec"]
    assert sorted(restricted_violations(spec)) == sorted(
        [
            "volume artifacts: hostPath is not allowed",
            "prepare-artifacts: capabilities added: CHOWN, DAC_OVERRIDE, FOWNER",
            "prepare-artifacts: runAsNonRoot must be true",
            "prepare-artifacts: runAsUser must not be 0",
        ]
    )
    assert find(docs, "Namespace", "substratus")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "privileged"
    )


def test_rbac_has_no_wildcards_and_reads_no_secrets() -> None:
    for overlay in OVERLAYS:
        for doc in kustomize(overlay):
            for rule in doc.get("rules", ()):
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule.get(field, ()), (doc["metadata"]["name"], rule)
                if "secrets" in rule["resources"]:
                    assert not {"get", "list", "watch"} & set(rule["verbs"]), rule


def test_crd_copies_in_the_manifests_are_the_generated_ones() -> None:
    for path in (ROOT / "api" / "v1").glob("*.yaml"):
        assert (ROOT / "manifests" / "base" / "crds" / path.name).read_text() == path.read_text()


def test_the_local_overlay_publishes_its_upload_origin() -> None:
    """The plugins upload only to published origins (plugins/uploadorigin.py): the local overlay publishes
    exactly the origin of the upload URL its controller signs."""
    docs = kustomize("local")
    published = find(docs, "ConfigMap", "substratus-upload-origins")
    assert published["metadata"]["namespace"] == "kube-public"
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "UPLOAD_PUBLIC_URL" in (d.get("data") or {}))
    assert parse_origins(published["data"]["origins"]) == {origin(config["data"]["UPLOAD_PUBLIC_URL"])}


def test_the_notebook_network_policy_component_sets_a_flag_the_controller_knows() -> None:
    """manifests/optional/notebook-network-policy: its patch adds a valid flag to the base Deployment's
    container, and its role grants NetworkPolicies the verbs every child kind has in the base role
    (e2e/test_rbac.py shows the role is needed and enough)."""
    component = ROOT / "manifests" / "optional" / "notebook-network-policy"
    kustomization = yaml.safe_load((component / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    assert all((component / r).is_file() for r in kustomization["resources"])
    (patch,) = kustomization["patches"]
    deployment = find(kustomize("local"), "Deployment", patch["target"]["name"])
    assert patch["target"]["kind"] == "Deployment"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["name"] == "controller"
    (op,) = yaml.safe_load(patch["patch"])
    assert op["op"] == "add"
    assert op["path"] == "/spec/template/spec/containers/0/args/-"
    argv = ["run", *deployment["spec"]["template"]["spec"]["containers"][0]["args"], op["value"]]
    assert resolve(vars(build_parser().parse_args(argv)), {}).notebook_network_policy == "deny-ingress"
    role = next(d for d in yaml.safe_load_all((component / "network-policy-role.yaml").read_text()) if d)
    base = find(kustomize("local"), "ClusterRole", "substratus-controller")
    child_verbs = sorted(v for r in base["rules"] if "configmaps" in r["resources"] for v in r["verbs"])
    assert all(r["resources"] == ["networkpolicies"] and r["apiGroups"] == ["networking.k8s.io"] for r in role["rules"])
    assert sorted(v for r in role["rules"] for v in r["verbs"]) == child_verbs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_builds_the_same_with_kubectl_1_20_and_a_current_one(overlay: str) -> None:
    """Issue 15 §1: Debian 12's kubectl 1.20 (kustomize v2) reads the overlays (`bases:`, not a directory
    under `resources:`), and renders exactly the documents a current kubectl renders."""
    rendered = {}
    for version, kubectl in kubectl_clients().items():
        done = subprocess.run([str(kubectl), "kustomize", str(ROOT / "manifests" / "overlays" / overlay)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, f"kubectl {version}: {done.stderr}"
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        rendered[version] = sorted(
            docs, key=lambda d: (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        )
    assert rendered["v1.20"] == rendered["current"]
