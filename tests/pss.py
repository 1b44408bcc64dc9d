"""A checker for the "restricted" Pod Security Standard (v1.25+ rules), used where the API server (1.20 here)
has no PodSecurity admission: `restricted_violations(pod_spec)` lists what breaks the profile."""

from __future__ import annotations

from typing import Any

_ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                    "secret"}  # fmt: skip
_ALLOWED_CAPS = {"NET_BIND_SERVICE"}


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    out: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            out.append(f"{flag} must not be set")
    for volume in spec.get("volumes") or ():
        kinds = set(volume) - {"name"}
        if not kinds <= _ALLOWED_VOLUMES:
            out.append(f"volume {volume['name']}: {', '.join(sorted(kinds - _ALLOWED_VOLUMES))} is not allowed")
    if (pod_sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        seccomp_everywhere = all(
            ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
            in ("RuntimeDefault", "Localhost")
            for c in (*spec.get("initContainers", ()), *spec.get("containers", ()))
        )
        if not seccomp_everywhere:
            out.append("seccompProfile RuntimeDefault (or Localhost) is required")
    for c in (*spec.get("initContainers", ()), *spec.get("containers", ())):
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or ()):
            out.append(f"{name}: capabilities must drop ALL")
        added = set(caps.get("add") or ()) - _ALLOWED_CAPS
        if added:
            out.append(f"{name}: capabilities added: {', '.join(sorted(added))}")
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser must not be 0")
        for port in c.get("ports") or ():
            if port.get("hostPort"):
                out.append(f"{name}: hostPort")
    return out
