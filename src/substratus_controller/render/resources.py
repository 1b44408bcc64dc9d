"""Compute resources of a workload container, and the GPU node placement that goes with them.

Invariants (docs/upstream-behaviour.md §6, docs/decisions.md §2.8):
- Requests `cpu: "<n>"`, `memory: "<n>Gi"`, `ephemeral-storage: "<n>Gi"` (from `disk`), and a memory
  limit equal to the memory request: a workload gets what it declared, and an overrun is an OOMKill the
  operator reports (`OOMKilled`) instead of a noisy neighbour or a node-level eviction. No CPU limit
  (throttling would only slow a workload down). Quantities are rendered in the canonical form the API
  server stores, so applies compare equal. Zero values are omitted (upstream wrote explicit `0`s; an
  absent request means the same thing except under a LimitRange, where the namespace default then
  applies, which is what an admin expects).
- No `resources` at all: the cloud's defaults (`cloud.default_resources()`; zeros on the local driver).
- A GPU with count > 0 sets request AND limit of the cloud's GPU resource (extended resources must have
  equal request and limit), and takes node selector and tolerations from the cloud's GPU table;
  an unknown type raises UnsupportedGPUError. Count 0 (or no gpu) means no GPU and no placement, whatever
  the type; a count above MAX_GPU_COUNT (more than any one node has) raises InvalidSpecError.
"""

from __future__ import annotations

from typing import Any

from substratus_controller.api.v1 import Resources
from substratus_controller.cloud.base import CloudDriver
from substratus_controller.constants import MAX_GPU_COUNT
from substratus_controller.jsontypes import JSON

from .bodies import put
from .errors import InvalidSpecError


def container_resources(resources: Resources | None, cloud: CloudDriver) -> tuple[JSON, dict[str, str], list[JSON]]:
    """(container `resources`, pod `nodeSelector`, pod `tolerations`); each may be empty (then omit it)."""
    if resources is None:
        default = cloud.default_resources()
        cpu, memory, disk, gpu = default.cpu, default.memory, default.disk, None
    else:
        cpu, memory, disk, gpu = resources.cpu, resources.memory, resources.disk, resources.gpu
    requests: dict[str, str] = {}
    if cpu:
        requests["cpu"] = str(cpu)
    limits: dict[str, str] = {}
    if memory:
        requests["memory"] = limits["memory"] = f"{memory}Gi"
    if disk:
        requests["ephemeral-storage"] = f"{disk}Gi"
    node_selector: dict[str, str] = {}
    tolerations: list[JSON] = []
    if gpu is not None and gpu.count > MAX_GPU_COUNT:
        raise InvalidSpecError(
            "spec.resources.gpu.count",
            f"{gpu.count} GPUs cannot be placed: a pod's GPUs come from one node, and no node has more than "
            f"{MAX_GPU_COUNT}",
        )
    if gpu is not None and gpu.count > 0:
        placement = cloud.gpu_placement(gpu.type.value if gpu.type is not None else None)
        requests[placement.resource] = limits[placement.resource] = str(gpu.count)
        node_selector = dict(placement.node_selector)
        tolerations = [dict(t) for t in placement.tolerations]
    out: dict[str, Any] = {}
    put(out, "requests", requests)
    put(out, "limits", limits)
    return out, node_selector, tolerations
