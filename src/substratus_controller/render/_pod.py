"""The pod of a workload (loader, modeller, notebook, server): one container, the container contract's
mounts, restricted security contexts, resources and GPU placement.

Invariants:
- Volumes and mounts come in a fixed order: `params`, own `artifacts`, `dataset`, `model`, then extras;
  env is sorted; so the same object always renders the same pod.
- The params ConfigMap is mounted with subPath at `/content/params.json`, read-only.
- Bucket mounts come from the cloud driver (`mount_bucket`); their pod annotations are merged into the
  pod's (GCS FUSE needs them), after `kubectl.kubernetes.io/default-container`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from substratus_controller.cloud.base import BucketURL, BucketVolume, Mount
from substratus_controller.constants import ANNOTATION_DEFAULT_CONTAINER, PARAMS_PATH, Kind

from ._common import JSON, put, require_image, volume_mount
from .context import RenderContext
from .env import container_env
from .labels import Parent
from .names import params_configmap_name
from .params import PARAMS_KEY
from .resources import container_resources
from .security import container_security_context, pod_security_context

PARAMS_VOLUME = "params"


@dataclass
class PodVolumes:
    """Volumes, the container's volumeMounts and the pod annotations they need, in insertion order."""

    volumes: list[JSON] = field(default_factory=list)
    mounts: list[JSON] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)

    def add(self, bucket: BucketVolume) -> None:
        """Add a bucket's volumes and mounts. A volume identical to one already added is shared (a driver may
        serve several mounts from one volume, e.g. one claim); a different volume under a used name is a bug."""
        existing = {v["name"]: v for v in self.volumes}
        for volume in bucket.volumes:
            if volume["name"] in existing:
                if existing[volume["name"]] != volume:
                    raise ValueError(f"two different volumes named {volume['name']!r}")
                continue
            self.volumes.append(dict(volume))
            existing[volume["name"]] = volume
        self.mounts += [volume_mount(m) for m in bucket.mounts]
        self.annotations.update(bucket.annotations)

    def add_params(self, kind: Kind, name: str) -> None:
        self.add(
            BucketVolume(
                volumes=[{"name": PARAMS_VOLUME, "configMap": {"name": params_configmap_name(kind, name)}}],
                mounts=[{"name": PARAMS_VOLUME, "mountPath": PARAMS_PATH, "subPath": PARAMS_KEY, "readOnly": True}],
            )
        )

    def add_bucket(self, ctx: RenderContext, url: BucketURL, *, volume: str, mount: Mount) -> None:
        self.add(ctx.cloud.mount_bucket(url, volume_name=volume, mounts=[mount]))


def workload_pod(
    obj: Parent,
    ctx: RenderContext,
    *,
    container: str,
    service_account: str,
    volumes: PodVolumes,
    command: Sequence[str] | None,
    env_extra: Sequence[JSON] = (),
    container_extra: JSON | None = None,
    restart_policy: str | None = None,
) -> tuple[dict[str, str], JSON]:
    """(pod annotations, pod spec) of the single-container workload pod of `obj`.

    `container_extra` holds container fields placed after `env` (imagePullPolicy, ports, readinessProbe).
    Raises InvalidSpecError (image, env, params) and UnsupportedGPUError (resources.gpu).
    """
    image = require_image(obj)
    resources, node_selector, tolerations = container_resources(obj.spec.resources, ctx.cloud)
    body: JSON = {"name": container, "image": image}
    extra = dict(container_extra or {})
    put(body, "imagePullPolicy", extra.pop("imagePullPolicy", None))
    put(body, "command", list(command or []))
    put(body, "env", container_env(env=obj.spec.env, params=obj.spec.params, extra=env_extra))
    for key, value in extra.items():
        put(body, key, value)
    put(body, "resources", resources)
    put(body, "volumeMounts", volumes.mounts)
    body["securityContext"] = container_security_context()

    spec: JSON = {"serviceAccountName": service_account}
    put(spec, "restartPolicy", restart_policy)
    spec["securityContext"] = pod_security_context()
    put(spec, "nodeSelector", node_selector)
    put(spec, "tolerations", tolerations)
    spec["containers"] = [body]
    put(spec, "volumes", volumes.volumes)
    annotations = {ANNOTATION_DEFAULT_CONTAINER: container}
    annotations.update((k, v) for k, v in volumes.annotations.items() if k != ANNOTATION_DEFAULT_CONTAINER)
    return annotations, spec
