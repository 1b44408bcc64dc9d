"""Invariants over every rendered child of every golden case.

- Apply-ready bodies: apiVersion, kind, metadata.name and metadata.namespace set; no None, "", [] or {}
  anywhere (except `emptyDir: {}`, which is how an emptyDir is spelled and is kept by the API server), and
  no `volumeMounts[].readOnly: false` (the server drops it: a plain bool with omitempty);
  names are DNS labels; env lists sorted by name; children other than ServiceAccounts are controller-owned.
- The Pod Security invariants below hold for every golden input rendered on every real driver (local, gcp,
  aws; drivers.py), not only on its own context's cloud, so every kind's pods are checked on every cloud:
  build Jobs, loader and modeller Jobs, notebook Pods, server Deployments.
- Every generated pod except the image builder satisfies the "restricted" Pod Security Standard
  (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted, checked by tests/pss.py
  with the pod's annotations), with ONE explicit exception: on the local driver the bucket volumes
  (`artifacts`, `dataset`, `model`) are hostPath volumes, which "restricted" (and even "baseline") forbids.
  The tests assert that exception exactly, so any other hostPath, or a hostPath on another cloud, fails.
  (The local overlay's controller Deployment, with its root `prepare-artifacts` init container, is checked
  in tests/integration/test_manifests.py; no rendered pod has such a container.)
- The builder pod is the documented exception (render/security.py), asserted exactly per builder: the pod
  runs as root (uid 0, gid 0, fsGroup 3003); Kaniko's container has no securityContext (the default
  capabilities); buildah's container is restricted except for exactly capabilities SETUID, SETGID and
  SETFCAP added and seccomp Unconfined. Never privileged, no host namespaces, init containers without a
  securityContext; hostPath only for the local upload directory (read-only). Every container that can fail
  a build (builder, git-clone, fetch-context) falls back to its logs for the termination message. Against
  "baseline" it has exactly two named exceptions: buildah's seccomp Unconfined, and on the local driver
  the hostPath upload directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from substratus_controller.cloud.local import DEFAULT_ARTIFACT_BUCKET
from substratus_controller.constants import BUILDER_BUILDAH, BUILDER_KANIKO
from substratus_controller.settings import DEFAULT_BUILDER
from tests.pss import baseline_violations, restricted_violations

from .drivers import DRIVERS
from .golden import GOLDEN, all_outputs, case_dirs, case_id, load_input, render_case

OUTPUTS = all_outputs()
IDS = [case for case, _, _ in OUTPUTS]
# Every golden input rendered on every real driver: (case id, cloud, children).
EVERY_CLOUD = [(case_id(c), cloud, render_case(c, cloud)[0]) for c in case_dirs() for cloud in DRIVERS]
EVERY_CLOUD_IDS = [f"{case}@{cloud}" for case, cloud, _ in EVERY_CLOUD]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
LOCAL_BUCKET_VOLUMES = {"artifacts", "dataset", "model"}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def pod_templates(children: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(description, pod metadata, pod spec) of every pod a child creates."""
    for child in children:
        what = f"{child['kind']}/{child['metadata']['name']}"
        if child["kind"] == "Pod":
            yield what, child["metadata"], child["spec"]
        elif child["kind"] in ("Job", "Deployment"):
            yield what, child["spec"]["template"]["metadata"], child["spec"]["template"]["spec"]


def pods(children: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(description, pod labels, pod spec) of every pod a child creates."""
    for what, meta, spec in pod_templates(children):
        yield what, meta["labels"], spec


def test_cases_found() -> None:
    assert len(OUTPUTS) >= 19
    assert set(DRIVERS) == {"local", "gcp", "aws"}


@pytest.mark.parametrize(("case", "cloud", "children"), OUTPUTS, ids=IDS)
def test_no_empty_values(case: str, cloud: str, children: list[dict[str, Any]]) -> None:
    for child in children:
        for path, node in walk(child):
            if node == {} and path.endswith(".emptyDir"):
                continue
            assert node is not None, f"{case}: None at {child['kind']}{path}"
            if isinstance(node, (str, list, dict)):
                assert node, f"{case}: empty {type(node).__name__} at {child['kind']}{path}"
            if re.search(r"[vV]olumeMounts\[\d+\]\.readOnly$", path):
                # a plain bool with omitempty: the server never stores false, so false would never compare equal
                assert node is True, f"{case}: readOnly: false at {child['kind']}{path}"


@pytest.mark.parametrize(("case", "cloud", "children"), OUTPUTS, ids=IDS)
def test_apply_ready(case: str, cloud: str, children: list[dict[str, Any]]) -> None:
    assert children, case
    for child in children:
        meta = child["metadata"]
        assert child["apiVersion"], case
        assert child["kind"], case
        assert meta["namespace"], case
        assert DNS_LABEL.match(meta["name"]), meta["name"]
        assert len(meta["name"]) <= 63, meta["name"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "substratus"
        if child["kind"] == "ServiceAccount":
            assert "ownerReferences" not in meta
        else:
            (owner,) = meta["ownerReferences"]
            assert owner["controller"] is True
            assert owner["blockOwnerDeletion"] is True
            assert owner["uid"]
        for path, node in walk(child):
            if path.endswith(".env"):
                names = [v["name"] for v in node]
                assert names == sorted(names), f"{case}: env not sorted at {path}"
                assert len(set(names)) == len(names), f"{case}: duplicate env at {path}"


def _check_restricted_container(what: str, container: dict[str, Any]) -> None:
    sc = container.get("securityContext", {})
    assert sc.get("allowPrivilegeEscalation") is False, what
    assert "ALL" in sc.get("capabilities", {}).get("drop", []), what
    assert set(sc.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, what
    assert not sc.get("privileged"), what
    assert sc.get("runAsNonRoot", True) is True, what
    assert sc.get("runAsUser", 1) != 0, what
    assert sc.get("seccompProfile", {}).get("type", "RuntimeDefault") in ("RuntimeDefault", "Localhost"), what
    assert "procMount" not in sc, what
    assert "seLinuxOptions" not in sc, what
    for port in container.get("ports", []):
        assert "hostPort" not in port, what


@pytest.mark.parametrize(("case", "cloud", "children"), EVERY_CLOUD, ids=EVERY_CLOUD_IDS)
def test_workload_pods_are_restricted(case: str, cloud: str, children: list[dict[str, Any]]) -> None:
    checked = 0
    for what, pod_labels, spec in pods(children):
        if pod_labels.get("role") == "build":
            continue
        checked += 1
        where = f"{case}: {what}"
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] != 0, where
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
            assert key not in spec, where
        for container in spec.get("initContainers", []) + spec["containers"]:
            _check_restricted_container(f"{where} container {container['name']}", container)

        host_paths = [v for v in spec.get("volumes", []) if "hostPath" in v]
        for volume in spec.get("volumes", []):
            types = set(volume) - {"name"}
            if volume in host_paths:
                continue
            assert types <= RESTRICTED_VOLUME_TYPES, f"{where}: volume {volume['name']} is {types}"
        if cloud == "local":
            # The one exception, asserted exactly: the local driver's bucket mounts are hostPath volumes
            # under the artifact directory (restricted PSS forbids hostPath; see the report/module docs).
            assert host_paths, f"{where}: expected the local driver's hostPath bucket volumes"
            bucket_dir = DEFAULT_ARTIFACT_BUCKET.removeprefix("file://")
            for volume in host_paths:
                assert volume["name"] in LOCAL_BUCKET_VOLUMES, where
                assert volume["hostPath"]["path"].startswith(bucket_dir + "/"), where
                assert volume["hostPath"]["type"] == "DirectoryOrCreate", where
        else:
            assert not host_paths, f"{where}: hostPath volume on cloud {cloud}"
    if any(c["kind"] == "ConfigMap" for c in children):  # the workload phase was rendered
        assert checked, f"{case}: no workload pod checked"


# The buildah builder's exception to "restricted", entry by entry (render/security.py says why).
BUILDAH_ADDED_CAPABILITIES = ["SETUID", "SETGID", "SETFCAP"]
BUILDAH_SECCOMP = {"type": "Unconfined"}


def _builder_of(case: str, cloud: str) -> str:
    _, context = load_input(GOLDEN / case)
    return str(context.get("builder", DEFAULT_BUILDER[cloud]))


@pytest.mark.parametrize(("case", "cloud", "children"), EVERY_CLOUD, ids=EVERY_CLOUD_IDS)
def test_builder_pod_is_the_documented_exception(case: str, cloud: str, children: list[dict[str, Any]]) -> None:
    checked = 0
    for what, pod_labels, spec in pods(children):
        if pod_labels.get("role") != "build":
            continue
        checked += 1
        where = f"{case}: {what}"
        assert spec["securityContext"] == {"runAsUser": 0, "runAsGroup": 0, "fsGroup": 3003}, where
        for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
            assert key not in spec, where
        for init in spec.get("initContainers", []):
            assert "securityContext" not in init, f"{where}: init container {init['name']}"
        (builder,) = spec["containers"]
        if _builder_of(case, cloud) == BUILDER_BUILDAH:
            sc = builder["securityContext"]
            assert sc["capabilities"]["add"] == BUILDAH_ADDED_CAPABILITIES, where
            assert sc["seccompProfile"] == BUILDAH_SECCOMP, where
            # Without exactly those two entries the container is a "restricted" one.
            rest = {**sc, "capabilities": {"drop": sc["capabilities"]["drop"]}}
            del rest["seccompProfile"]
            _check_restricted_container(f"{where} builder", {**builder, "securityContext": rest})
            assert set(sc) == {"allowPrivilegeEscalation", "capabilities", "seccompProfile"}, where
        else:
            assert "securityContext" not in builder, f"{where}: Kaniko runs with the default capabilities"
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["name"] in ("builder", "git-clone", "fetch-context"):
                assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", f"{where} {container['name']}"
        for volume in spec["volumes"]:
            if "hostPath" in volume:
                assert cloud == "local", f"{where}: hostPath volume on cloud {cloud}"
                assert volume["name"] == "upload", where
                assert volume["hostPath"]["type"] == "Directory", where
                mount = next(m for m in builder["volumeMounts"] if m["name"] == "upload")
                assert mount.get("readOnly") is True, where
    if any(c["kind"] == "ServiceAccount" and c["metadata"]["name"] == "container-builder" for c in children):
        assert checked, f"{case}: no builder pod checked"


# The named exceptions to the Pod Security checker's verdicts (tests/pss.py messages).
LOCAL_BUCKET_HOST_PATH = "volume {}: hostPath is not allowed"  # restricted and baseline; local driver only
LOCAL_UPLOAD_HOST_PATH = "volume upload: hostPath is not allowed"  # the builder's, baseline; local driver only
BUILDAH_SECCOMP_UNCONFINED = "builder: seccompProfile Unconfined is not allowed"  # baseline; render/security.py


@pytest.mark.parametrize(("case", "cloud", "children"), EVERY_CLOUD, ids=EVERY_CLOUD_IDS)
def test_workload_pods_pass_the_pod_security_checker(case: str, cloud: str, children: list[dict[str, Any]]) -> None:
    """Every control of "restricted" as tests/pss.py checks it, with the pod's annotations: the only violations
    allowed are the local driver's hostPath bucket volumes, by name."""
    for what, meta, spec in pod_templates(children):
        if meta["labels"].get("role") == "build":
            continue
        expected = [
            LOCAL_BUCKET_HOST_PATH.format(v["name"])
            for v in spec["volumes"]
            if cloud == "local" and v["name"] in LOCAL_BUCKET_VOLUMES
        ]
        assert restricted_violations(spec, meta.get("annotations")) == expected, f"{case} on {cloud}: {what}"


@pytest.mark.parametrize(("case", "cloud", "children"), EVERY_CLOUD, ids=EVERY_CLOUD_IDS)
def test_builder_pods_are_baseline_but_for_the_named_exceptions(
    case: str, cloud: str, children: list[dict[str, Any]]
) -> None:
    """The builder is not "restricted" (it runs as root), and is "baseline" except for buildah's seccomp
    Unconfined and, on the local driver, the hostPath upload directory."""
    for what, meta, spec in pod_templates(children):
        if meta["labels"].get("role") != "build":
            continue
        expected = (
            [LOCAL_UPLOAD_HOST_PATH] if cloud == "local" and any(v["name"] == "upload" for v in spec["volumes"]) else []
        )
        if _builder_of(case, cloud) == BUILDER_BUILDAH:
            expected.append(BUILDAH_SECCOMP_UNCONFINED)
        assert baseline_violations(spec, meta.get("annotations")) == expected, f"{case} on {cloud}: {what}"
        assert "runAsUser must not be 0" in restricted_violations(spec), f"{case} on {cloud}: {what}"


def test_every_kind_is_checked_on_every_cloud() -> None:
    """The matrix reaches every pod the controller creates on every cloud: each kind's workload and build
    pods, and both builders."""
    seen: set[tuple[str, str, str, str]] = set()
    builders: set[tuple[str, str]] = set()
    for case, cloud, children in EVERY_CLOUD:
        for child in children:
            for _, meta, _ in pod_templates([child]):
                role = meta["labels"]["role"]
                seen.add((cloud, child["metadata"]["ownerReferences"][0]["kind"], child["kind"], role))
                if role == "build":
                    builders.add((cloud, _builder_of(case, cloud)))
    workloads = {("Dataset", "Job"), ("Model", "Job"), ("Notebook", "Pod"), ("Server", "Deployment")}
    expected = {(cloud, owner, kind, "run") for cloud in DRIVERS for owner, kind in workloads}
    expected |= {
        (cloud, owner, "Job", "build") for cloud in DRIVERS for owner in ("Dataset", "Model", "Notebook", "Server")
    }
    assert seen == expected
    assert builders == {(cloud, builder) for cloud in DRIVERS for builder in (BUILDER_BUILDAH, BUILDER_KANIKO)}


@pytest.mark.parametrize(("case", "cloud", "children"), OUTPUTS, ids=IDS)
def test_read_only_dependency_mounts(case: str, cloud: str, children: list[dict[str, Any]]) -> None:
    """The container contract's mount layout (docs/decisions.md §3)."""
    expected = {
        "params": ("/content/params.json", True),
        "artifacts": ("/content/artifacts", False),
        "dataset": ("/content/data", True),
        "model": ("/content/model", True),
        "work": ("/content/work", None),
        "content": ("/content", None),
        "home": ("/home/substratus", None),
        "tmp": ("/tmp", None),
    }
    for what, pod_labels, spec in pods(children):
        if pod_labels.get("role") == "build":
            continue
        for mount in spec["containers"][0]["volumeMounts"]:
            path, read_only = expected[mount["name"]]
            assert mount["mountPath"] == path, f"{case}: {what}"
            if read_only is not None:
                assert mount.get("readOnly", False) is read_only, f"{case}: {what} {mount['name']}"


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v.get("value", "") for v in container.get("env", [])}


@pytest.mark.parametrize(("case", "cloud", "children"), OUTPUTS, ids=IDS)
def test_root_built_images_run_as_uid_1000(case: str, cloud: str, children: list[dict[str, Any]]) -> None:
    """Images built as root (no uid-1000 user, no HOME, root-owned /content) get writable HOME, caches and
    /tmp from emptyDirs; notebooks also get Jupyter's directories and a writable /content."""
    checked = 0
    for what, pod_labels, spec in pods(children):
        if pod_labels.get("role") == "build":
            continue
        checked += 1
        container = spec["containers"][0]
        env = _env(container)
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        for path in ("/home/substratus", "/tmp"):
            assert "emptyDir" in volumes[mounts[path]], f"{case}: {what}: {path} is not an emptyDir"
        assert env["HOME"] == "/home/substratus", f"{case}: {what}"
        assert env["TMPDIR"] == "/tmp", f"{case}: {what}"
        user_env = _user_env(case)
        for var in ("XDG_CACHE_HOME", "HF_HOME"):  # a user's own value wins, else a directory under HOME
            expected = user_env.get(var, env[var] if env[var].startswith("/home/substratus/") else None)
            assert env[var] == expected, f"{case}: {what}: {var}={env[var]}"
        if container["name"] == "notebook":
            for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
                assert env[var].startswith("/home/substratus/"), f"{case}: {var}"
            assert "emptyDir" in volumes[mounts["/content"]], f"{case}: /content is not writable"
            (init,) = spec["initContainers"]
            assert init["image"] == container["image"], case
            assert [m["name"] for m in init["volumeMounts"]] == [mounts["/content"]], case
        else:
            assert "/content" not in mounts, f"{case}: {what}"
    if any(c["kind"] == "ConfigMap" for c in children):
        assert checked, f"{case}: no workload pod checked"


def _user_env(case: str) -> dict[str, str]:
    obj, _ = load_input(GOLDEN / case)
    return dict(obj.spec.env or {})


@pytest.mark.parametrize(("case", "cloud", "children"), OUTPUTS, ids=IDS)
def test_pull_policy_memory_limit_and_termination_message(
    case: str, cloud: str, children: list[dict[str, Any]]
) -> None:
    for what, pod_labels, spec in pods(children):
        if pod_labels.get("role") == "build":
            continue
        for container in spec.get("initContainers", []) + spec["containers"]:
            image = container["image"]
            tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            assert container["imagePullPolicy"] == ("IfNotPresent" if tagged else "Always"), f"{case}: {what}"
            assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", f"{case}: {what}"
        resources = spec["containers"][0].get("resources", {})
        requested = resources.get("requests", {}).get("memory")
        assert resources.get("limits", {}).get("memory") == requested, f"{case}: {what}: memory limit != request"
        assert "cpu" not in resources.get("limits", {}), f"{case}: {what}: no CPU limit"
