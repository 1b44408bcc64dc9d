"""Security contexts of the generated pods.

Invariants:
- Every generated pod except the image builder satisfies the "restricted" Pod Security Standard as far as
  its security contexts go: non-root uid 1000, gid 3003 (upstream's fsGroup and the gid its GCS FUSE mounts
  use), seccomp RuntimeDefault, no privilege escalation, all capabilities dropped. Upstream ran workloads
  as root; with uid 1000, a read-write bucket mount must be writable by uid 1000 or by group 3003 (e.g.
  FUSE `uid=1000` or group-writable modes, a hostPath directory created with group 3003 and mode 0775):
  that is the cloud driver's business, as are the volumes themselves (the local driver's hostPath mounts
  are not allowed by "restricted").
- The builder pod is the one documented exception. Both builders run as root (`runAsUser: 0,
  runAsGroup: 0, fsGroup: 3003`, upstream's values): an image build unpacks base-image layers whose files
  have any owner and mode, and RUN steps run package managers and chown as root. Never privileged, never
  host namespaces.
- Kaniko unpacks the base image over its own root filesystem and runs RUN steps there, with the
  container's default capabilities; no container securityContext. "baseline" Pod Security allows it.
- Buildah (`buildah_container_security_context`) builds in its own storage (vfs) and runs RUN steps in a
  chroot. As root without CAP_SYS_ADMIN it re-executes itself in a new user namespace with the identity
  map `0 0 4294967295`, inside which it holds the capabilities it needs (chown of unpacked files, the bind
  mounts of the RUN chroot) over that namespace's own objects only. The grant, exactly:
  - `seccompProfile: Unconfined`: containerd's RuntimeDefault profile allows unshare(CLONE_NEWUSER) only
    with CAP_SYS_ADMIN, so buildah could not create the namespace;
  - capabilities: drop ALL, add SETUID, SETGID and SETFCAP: writing the child namespace's uid_map needs
    CAP_SETUID, its gid_map CAP_SETGID, and since Linux 5.12 a map that includes uid 0 needs CAP_SETFCAP;
  - `allowPrivilegeEscalation: false` (no setuid binary or file capability raises them), not privileged.
  Seccomp Unconfined is beyond "baseline": namespaces that build with buildah need the "privileged" Pod
  Security level (or a Localhost seccomp profile allowing unshare, which "baseline" permits).
  The alternative, documented but not rendered: the default capabilities plus SYS_ADMIN with seccomp
  RuntimeDefault (buildah then needs no user namespace; also beyond "baseline"); SYS_ADMIN grants mount
  and much more in the pod's own namespaces, so the user-namespace grant above is preferred.
- What a Dockerfile RUN step can reach with buildah (chroot isolation): it shares the pod's network
  namespace and sees the pod's processes; it runs as root inside the user namespace, with the builder's
  files (the build context, the storage of the image) in reach; on the network it reaches whatever the pod
  can, including the registry and a cloud metadata server (hence the builder ServiceAccount's cloud
  identity) unless the cluster blocks them. Treat a Dockerfile as code run with the builder's rights.
- Functions return fresh dicts, so callers may not mutate shared state by accident.
"""

from __future__ import annotations

from typing import Any

from substratus_controller.constants import WORKLOAD_GID, WORKLOAD_UID

RUN_AS_USER = WORKLOAD_UID
RUN_AS_GROUP = WORKLOAD_GID
FS_GROUP = WORKLOAD_GID


def pod_security_context() -> dict[str, Any]:
    """The restricted pod-level context of every generated workload pod (not the builder)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "fsGroup": FS_GROUP,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """The restricted container-level context of every workload container (not the builder)."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def builder_pod_security_context() -> dict[str, Any]:
    """The builder's pod context (either builder): root, as image builds require (see module docstring);
    upstream's values."""
    return {"runAsUser": 0, "runAsGroup": 0, "fsGroup": FS_GROUP}


def buildah_container_security_context() -> dict[str, Any]:
    """The buildah container's context: what it needs to create its user namespace, and nothing else (see
    module docstring for each entry)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID", "SETFCAP"]},
        "seccompProfile": {"type": "Unconfined"},
    }
