"""A checker for the Pod Security Standards, used where the API server (1.20 here) has no PodSecurity admission.

`restricted_violations(pod_spec, annotations=...)` lists what breaks the "restricted" profile (which includes
"baseline"); `baseline_violations` what breaks "baseline" alone. Every control of
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.29+ rules; Windows-only fields other
than hostProcess, and the optional "Non-root groups" control, are not checked):

baseline: HostProcess, host namespaces, privileged containers, capabilities (only the default set may be
  added), hostPath volumes, host ports, AppArmor (annotations and `appArmorProfile`), SELinux, /proc mount
  type, seccomp (never Unconfined, also through the alpha annotations), sysctls (only the safe set).
restricted: volume types, privilege escalation, running as non-root (container overrides pod), runAsUser
  not 0, seccomp RuntimeDefault or Localhost on the pod or on every container (container overrides pod),
  capabilities (drop ALL, add at most NET_BIND_SERVICE).

Containers, initContainers and ephemeralContainers are all checked. `annotations` are the pod's metadata
annotations (AppArmor and the legacy seccomp annotations live there); without them those are not checked.
Messages name the container (`<name>: ...`), the volume (`volume <name>: ...`) or the annotation; pod-level
fields have no prefix. A volume's hostPath is one message, the baseline and restricted controls alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                    "secret"}  # fmt: skip
# baseline: the container runtime's default set may be added back; restricted: NET_BIND_SERVICE alone.
_BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                  "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}  # fmt: skip
_RESTRICTED_CAPS = {"NET_BIND_SERVICE"}
_SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                 "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                 "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                 "net.ipv4.tcp_keepalive_probes"}  # fmt: skip
# v1.31 also allows container_engine_t; the older, stricter list holds on every version.
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t"}
_SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
_APPARMOR_TYPES = {"RuntimeDefault", "Localhost"}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def restricted_violations(spec: dict[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    """What in the pod `spec` (and its metadata `annotations`) breaks the "restricted" profile."""
    return _violations(spec, annotations or {}, restricted=True)


def baseline_violations(spec: dict[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    """What in the pod `spec` (and its metadata `annotations`) breaks the "baseline" profile."""
    return _violations(spec, annotations or {}, restricted=False)


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or ()


def _violations(spec: dict[str, Any], annotations: Mapping[str, str], *, restricted: bool) -> list[str]:
    out: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    out += _pod_level(spec, pod_sc, annotations, restricted=restricted)
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    unset_seccomp = False
    for c in _containers(spec):
        sc = c.get("securityContext") or {}
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        unset_seccomp = unset_seccomp or seccomp is None
        out += _container_level(c["name"], sc, c.get("ports") or [], pod_sc, restricted=restricted)
    if restricted and pod_seccomp is None and unset_seccomp:
        out.append("seccompProfile RuntimeDefault (or Localhost) is required")
    return out


def _pod_level(
    spec: dict[str, Any], pod_sc: dict[str, Any], annotations: Mapping[str, str], *, restricted: bool
) -> list[str]:
    out: list[str] = []
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("windowsOptions.hostProcess must not be true")
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            out.append(f"{flag} must not be set")
    for volume in spec.get("volumes") or ():
        kinds = set(volume) - {"name"}
        bad = kinds - _ALLOWED_VOLUMES if restricted else kinds & {"hostPath"}
        if bad:
            out.append(f"volume {volume['name']}: {', '.join(sorted(bad))} is not allowed")
    for key, value in sorted(annotations.items()):
        if key.startswith(APPARMOR_ANNOTATION) and not (value == "runtime/default" or value.startswith("localhost/")):
            out.append(f"annotation {key}: {value} is not allowed")
        if (key == SECCOMP_POD_ANNOTATION or key.startswith(SECCOMP_CONTAINER_ANNOTATION)) and value == "unconfined":
            out.append(f"annotation {key}: {value} is not allowed")
    for sysctl in pod_sc.get("sysctls") or ():
        if sysctl["name"] not in _SAFE_SYSCTLS:
            out.append(f"sysctl {sysctl['name']} is not allowed")
    out += _shared("", pod_sc)
    if restricted:
        if pod_sc.get("runAsNonRoot") is False:
            out.append("runAsNonRoot must be true")
        if pod_sc.get("runAsUser") == 0:
            out.append("runAsUser must not be 0")
    return out


def _shared(prefix: str, sc: dict[str, Any]) -> list[str]:
    """The baseline checks of the fields a pod and a container securityContext both have."""
    out: list[str] = []
    selinux = sc.get("seLinuxOptions") or {}
    if (selinux.get("type") or "") not in _SELINUX_TYPES:
        out.append(f"{prefix}seLinuxOptions.type {selinux['type']} is not allowed")
    for field in ("user", "role"):
        if selinux.get(field):
            out.append(f"{prefix}seLinuxOptions.{field} must not be set")
    apparmor = (sc.get("appArmorProfile") or {}).get("type")
    if apparmor is not None and apparmor not in _APPARMOR_TYPES:
        out.append(f"{prefix}appArmorProfile {apparmor} is not allowed")
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in _SECCOMP_TYPES:
        out.append(f"{prefix}seccompProfile {seccomp} is not allowed")
    return out


def _container_level(
    name: str, sc: dict[str, Any], ports: list[dict[str, Any]], pod_sc: dict[str, Any], *, restricted: bool
) -> list[str]:
    out: list[str] = []
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        out.append(f"{name}: windowsOptions.hostProcess must not be true")
    if sc.get("privileged"):
        out.append(f"{name}: privileged")
    caps = sc.get("capabilities") or {}
    if restricted and "ALL" not in (caps.get("drop") or ()):
        out.append(f"{name}: capabilities must drop ALL")
    added = set(caps.get("add") or ()) - (_RESTRICTED_CAPS if restricted else _BASELINE_CAPS)
    if added:
        out.append(f"{name}: capabilities added: {', '.join(sorted(added))}")
    for port in ports:
        if port.get("hostPort"):
            out.append(f"{name}: hostPort {port['hostPort']} is not allowed")
    if sc.get("procMount", "Default") != "Default":
        out.append(f"{name}: procMount {sc['procMount']} is not allowed")
    out += _shared(f"{name}: ", sc)
    if restricted:
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        run_as_non_root = sc.get("runAsNonRoot")
        if (pod_sc.get("runAsNonRoot") if run_as_non_root is None else run_as_non_root) is not True:
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser") == 0:
            out.append(f"{name}: runAsUser must not be 0")
    return out
