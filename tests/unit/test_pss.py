"""tests/pss.py, the Pod Security Standards checker, control by control.

One compliant "restricted" pod (an init, a regular and an ephemeral container, a volume of every allowed
type), then, for every control of https://kubernetes.io/docs/concepts/security/pod-security-standards/, a
pod that breaks exactly that control, with the exact messages of `restricted_violations` and of
`baseline_violations` (empty for a restricted-only control), plus the allowed values the document lists
next to the forbidden ones and the pod/container override cases (a container's setting wins over the pod's).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.pss import _ALLOWED_VOLUMES, baseline_violations, restricted_violations

DELETE = object()
RESTRICTED_CONTAINER: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
APPARMOR = f"{APPARMOR_PREFIX}main"
SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"


def compliant() -> dict[str, Any]:
    """A pod spec that satisfies "restricted": the pod sets runAsNonRoot, a non-zero uid and seccomp."""
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [
            {"name": "init", "image": "busybox", "securityContext": copy.deepcopy(RESTRICTED_CONTAINER)}
        ],
        "containers": [
            {
                "name": "main",
                "image": "app",
                "ports": [{"containerPort": 8080}],
                "securityContext": copy.deepcopy(RESTRICTED_CONTAINER),
            }
        ],
        "ephemeralContainers": [
            {"name": "debug", "image": "busybox", "securityContext": copy.deepcopy(RESTRICTED_CONTAINER)}
        ],
        "volumes": [
            {"name": "cm", "configMap": {"name": "cm"}},
            {"name": "csi", "csi": {"driver": "gcsfuse.csi.storage.gke.io"}},
            {"name": "downward", "downwardAPI": {"items": []}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "proj", "projected": {"sources": []}},
            {"name": "sec", "secret": {"secretName": "s"}},
        ],
    }


def patched(changes: dict[str, Any]) -> dict[str, Any]:
    """`compliant()` with each dotted path (`containers.0.securityContext.privileged`) set, or deleted."""
    spec = compliant()
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node.append(value)
        elif value is DELETE:
            del node[last]
        else:
            node[last] = value
    return spec


MAIN = "containers.0.securityContext"
INIT = "initContainers.0.securityContext"
DEBUG = "ephemeralContainers.0.securityContext"
POD = "securityContext"
HOST_PATH = {"name": "host", "hostPath": {"path": "/var/lib/x", "type": "Directory"}}
EVERY_CONTAINER_NON_ROOT = {f"{c}.runAsNonRoot": True for c in (INIT, MAIN, DEBUG)}


def case(control: str, changes: dict[str, Any], *messages: str, annotations: dict[str, str] | None = None) -> Any:
    return pytest.param(changes, annotations or {}, list(messages), id=control)


# Baseline controls: the same messages under "baseline" and "restricted" (which includes it).
BASELINE = [
    case("HostProcess-pod", {f"{POD}.windowsOptions.hostProcess": True}, "windowsOptions.hostProcess must not be true"),
    case(
        "HostProcess-container",
        {f"{MAIN}.windowsOptions.hostProcess": True},
        "main: windowsOptions.hostProcess must not be true",
    ),
    case("HostNamespaces-network", {"hostNetwork": True}, "hostNetwork must not be set"),
    case("HostNamespaces-pid", {"hostPID": True}, "hostPID must not be set"),
    case("HostNamespaces-ipc", {"hostIPC": True}, "hostIPC must not be set"),
    case("Privileged-container", {f"{MAIN}.privileged": True}, "main: privileged"),
    case("Privileged-init-container", {f"{INIT}.privileged": True}, "init: privileged"),
    case("Privileged-ephemeral-container", {f"{DEBUG}.privileged": True}, "debug: privileged"),
    case(
        "Capabilities-beyond-the-default-set",
        {f"{MAIN}.capabilities.add": ["SYS_ADMIN", "NET_BIND_SERVICE"]},
        "main: capabilities added: SYS_ADMIN",
    ),
    case("HostPathVolumes", {"volumes.-": HOST_PATH}, "volume host: hostPath is not allowed"),
    case("HostPorts", {"containers.0.ports.0.hostPort": 8080}, "main: hostPort 8080 is not allowed"),
    case(
        "AppArmor-annotation",
        {},
        f"annotation {APPARMOR}: unconfined is not allowed",
        annotations={APPARMOR: "unconfined"},
    ),
    case("AppArmor-pod", {f"{POD}.appArmorProfile.type": "Unconfined"}, "appArmorProfile Unconfined is not allowed"),
    case(
        "AppArmor-container",
        {f"{MAIN}.appArmorProfile.type": "Unconfined"},
        "main: appArmorProfile Unconfined is not allowed",
    ),
    case(
        "SELinux-type-container",
        {f"{MAIN}.seLinuxOptions.type": "spc_t"},
        "main: seLinuxOptions.type spc_t is not allowed",
    ),
    case(
        "SELinux-type-pod",
        {f"{POD}.seLinuxOptions.type": "unconfined_t"},
        "seLinuxOptions.type unconfined_t is not allowed",
    ),
    case("SELinux-user", {f"{MAIN}.seLinuxOptions.user": "system_u"}, "main: seLinuxOptions.user must not be set"),
    case("SELinux-role", {f"{POD}.seLinuxOptions.role": "system_r"}, "seLinuxOptions.role must not be set"),
    case("ProcMountType", {f"{MAIN}.procMount": "Unmasked"}, "main: procMount Unmasked is not allowed"),
    case(
        "Seccomp-pod-Unconfined",
        {f"{POD}.seccompProfile.type": "Unconfined"},
        "seccompProfile Unconfined is not allowed",
    ),
    case(
        "Seccomp-container-Unconfined-overrides-pod-RuntimeDefault",
        {f"{MAIN}.seccompProfile.type": "Unconfined"},
        "main: seccompProfile Unconfined is not allowed",
    ),
    case(
        "Seccomp-annotation",
        {},
        f"annotation {SECCOMP_POD}: unconfined is not allowed",
        annotations={SECCOMP_POD: "unconfined"},
    ),
    case(
        "Sysctls",
        {f"{POD}.sysctls": [{"name": "kernel.msgmax", "value": "65536"}]},
        "sysctl kernel.msgmax is not allowed",
    ),
]

# Restricted controls: what "baseline" allows.
RESTRICTED = [
    case(
        "VolumeTypes",
        {"volumes.-": {"name": "share", "nfs": {"server": "nfs", "path": "/"}}},
        "volume share: nfs is not allowed",
    ),
    case(
        "PrivilegeEscalation-true",
        {f"{MAIN}.allowPrivilegeEscalation": True},
        "main: allowPrivilegeEscalation must be false",
    ),
    case(
        "PrivilegeEscalation-unset",
        {f"{MAIN}.allowPrivilegeEscalation": DELETE},
        "main: allowPrivilegeEscalation must be false",
    ),
    case(
        "RunningAsNonRoot-unset",
        {f"{POD}.runAsNonRoot": DELETE},
        "init: runAsNonRoot must be true",
        "main: runAsNonRoot must be true",
        "debug: runAsNonRoot must be true",
    ),
    case(
        "RunningAsNonRoot-container-false-overrides-pod-true",
        {f"{MAIN}.runAsNonRoot": False},
        "main: runAsNonRoot must be true",
    ),
    case(
        "RunningAsNonRoot-pod-false",
        {f"{POD}.runAsNonRoot": False, **EVERY_CONTAINER_NON_ROOT},
        "runAsNonRoot must be true",
    ),
    case("RunningAsNonRootUser-pod", {f"{POD}.runAsUser": 0}, "runAsUser must not be 0"),
    case("RunningAsNonRootUser-container", {f"{MAIN}.runAsUser": 0}, "main: runAsUser must not be 0"),
    case(
        "Seccomp-unset", {f"{POD}.seccompProfile": DELETE}, "seccompProfile RuntimeDefault (or Localhost) is required"
    ),
    case(
        "Seccomp-unset-on-some-containers",
        {f"{POD}.seccompProfile": DELETE, f"{MAIN}.seccompProfile.type": "Localhost"},
        "seccompProfile RuntimeDefault (or Localhost) is required",
    ),
    case("Capabilities-drop-ALL", {f"{MAIN}.capabilities.drop": DELETE}, "main: capabilities must drop ALL"),
    case(
        "Capabilities-add-beyond-NET_BIND_SERVICE",
        {f"{MAIN}.capabilities.add": ["CHOWN", "NET_BIND_SERVICE"]},
        "main: capabilities added: CHOWN",
    ),
]

# The allowed values the document lists next to the forbidden ones: no violation under either profile.
ALLOWED = [
    case(
        "HostProcess-false", {f"{POD}.windowsOptions.hostProcess": False, f"{MAIN}.windowsOptions.hostProcess": False}
    ),
    case("HostNamespaces-false", {"hostNetwork": False, "hostPID": False, "hostIPC": False}),
    case("Privileged-false", {f"{c}.privileged": False for c in (INIT, MAIN, DEBUG)}),
    case("HostPorts-0", {"containers.0.ports.0.hostPort": 0}),
    case(
        "AppArmor-annotation-runtime-default-and-localhost",
        {},
        annotations={APPARMOR: "localhost/my-profile", f"{APPARMOR_PREFIX}init": "runtime/default"},
    ),
    case(
        "AppArmor-RuntimeDefault-and-Localhost",
        {
            f"{POD}.appArmorProfile.type": "RuntimeDefault",
            f"{MAIN}.appArmorProfile": {"type": "Localhost", "localhostProfile": "p"},
        },
    ),
    case(
        "SELinux-allowed-types-and-a-level",
        {
            f"{POD}.seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
            f"{MAIN}.seLinuxOptions": {"type": "container_init_t", "user": ""},
            f"{INIT}.seLinuxOptions.type": "container_kvm_t",
        },
    ),
    case("ProcMountType-Default", {f"{MAIN}.procMount": "Default"}),
    case(
        "Sysctls-safe",
        {
            f"{POD}.sysctls": [
                {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"},
                {"name": "net.ipv4.tcp_keepalive_probes", "value": "5"},
            ]
        },
    ),
    case("RunningAsNonRoot-on-every-container", {f"{POD}.runAsNonRoot": DELETE, **EVERY_CONTAINER_NON_ROOT}),
    case(
        "Seccomp-on-every-container",
        {
            f"{POD}.seccompProfile": DELETE,
            f"{INIT}.seccompProfile.type": "RuntimeDefault",
            f"{MAIN}.seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
            f"{DEBUG}.seccompProfile.type": "RuntimeDefault",
        },
    ),
    case("Capabilities-NET_BIND_SERVICE", {f"{MAIN}.capabilities.add": ["NET_BIND_SERVICE"]}),
]
PARAMS = ("changes", "annotations", "messages")


def test_the_compliant_pod_is_restricted_and_uses_every_allowed_volume_type() -> None:
    spec = compliant()
    assert restricted_violations(spec) == []
    assert baseline_violations(spec) == []
    assert {k for v in spec["volumes"] for k in v if k != "name"} == _ALLOWED_VOLUMES


def test_a_minimal_pod_is_baseline_but_not_restricted() -> None:
    """The default (minimally specified) pod is what "baseline" allows and "restricted" does not."""
    spec = {"containers": [{"name": "app", "image": "app"}]}
    assert baseline_violations(spec) == []
    assert restricted_violations(spec) == [
        "app: capabilities must drop ALL",
        "app: allowPrivilegeEscalation must be false",
        "app: runAsNonRoot must be true",
        "seccompProfile RuntimeDefault (or Localhost) is required",
    ]


@pytest.mark.parametrize(PARAMS, BASELINE)
def test_each_baseline_control(changes: dict[str, Any], annotations: dict[str, str], messages: list[str]) -> None:
    spec = patched(changes)
    assert baseline_violations(spec, annotations) == messages
    assert restricted_violations(spec, annotations) == messages


@pytest.mark.parametrize(PARAMS, RESTRICTED)
def test_each_restricted_control(changes: dict[str, Any], annotations: dict[str, str], messages: list[str]) -> None:
    spec = patched(changes)
    assert restricted_violations(spec, annotations) == messages
    assert baseline_violations(spec, annotations) == []


@pytest.mark.parametrize(PARAMS, ALLOWED)
def test_allowed_values(changes: dict[str, Any], annotations: dict[str, str], messages: list[str]) -> None:
    assert messages == []
    spec = patched(changes)
    assert restricted_violations(spec, annotations) == []
    assert baseline_violations(spec, annotations) == []


def test_every_container_field_is_checked() -> None:
    """A broken init or ephemeral container is reported by name, like a regular one."""
    spec = patched(
        {
            "initContainers.0.securityContext.procMount": "Unmasked",
            "ephemeralContainers.0.securityContext.capabilities": {"add": ["SYS_PTRACE"]},
        }
    )
    assert baseline_violations(spec) == [
        "init: procMount Unmasked is not allowed",
        "debug: capabilities added: SYS_PTRACE",
    ]
