"""Security contexts of the generated pods.

Invariants:
- Every generated pod except the image builder satisfies the "restricted" Pod Security Standard as far as
  its security contexts go: non-root uid 1000, gid 3003 (upstream's fsGroup and the gid its GCS FUSE mounts
  use), seccomp RuntimeDefault, no privilege escalation, all capabilities dropped. Upstream ran workloads
  as root; with uid 1000, a read-write bucket mount must be writable by uid 1000 or by group 3003 (e.g.
  FUSE `uid=1000` or group-writable modes, a hostPath directory created with group 3003 and mode 0775):
  that is the cloud driver's business, as are the volumes themselves (the local driver's hostPath mounts
  are not allowed by "restricted").
- The builder pod is the one documented exception: Kaniko builds an image by unpacking the base image's
  filesystem over its own root and running the Dockerfile's RUN steps, which needs uid 0 (files of any
  owner, chown, package managers). It runs as root like upstream (`runAsUser: 0, runAsGroup: 0,
  fsGroup: 3003`), in namespaces whose Pod Security level allows it ("baseline" does), never privileged.
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
    """The builder's pod context: root, as Kaniko requires (see module docstring); upstream's values."""
    return {"runAsUser": 0, "runAsGroup": 0, "fsGroup": FS_GROUP}
