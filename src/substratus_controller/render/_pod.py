"""The pod of a workload (loader, modeller, notebook, server): one container, the container contract's
mounts, restricted security contexts, resources and GPU placement.

Invariants:
- Volumes and mounts come in a fixed order: `params`, own `artifacts`, `dataset`, `model`, then extras,
  then the writable scratch directories `home` and `tmp` (render/scratch.py); env is sorted; so the same
  object always renders the same pod.
- `imagePullPolicy` is Kubernetes' own default made explicit (`pull_policy`): IfNotPresent for a tagged or
  digest-pinned image, Always for an untagged or `:latest` one. Images loaded into a node (kind, the test
  node) therefore run when tagged, and a moving tag is still pulled.
- `terminationMessagePolicy: FallbackToLogsOnError`: a container that fails without writing
  /dev/termination-log still leaves its last log lines as the termination message the operator reports.
- The params ConfigMap is mounted with subPath at `/content/params.json`, read-only.
- Bucket mounts come from the cloud driver (`mount_bucket`); their pod annotations are merged into the
  pod's (GCS FUSE needs them), after `kubectl.kubernetes.io/default-container`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from substratus_controller.cloud.base import BucketURL, BucketVolume, Mount
from substratus_controller.constants import ANNOTATION_DEFAULT_CONTAINER, PARAMS_PATH, Kind
from substratus_controller.jsontypes import JSON

from .bodies import put, require_image, volume_mount
from .context import RenderContext
from .env import container_env
from .labels import Parent
from .names import params_configmap_name
from .params import PARAMS_KEY
from .resources import container_resources
from .scratch import scratch_env, scratch_volumes
from .security import container_security_context, pod_security_context

PARAMS_VOLUME = "params"
TERMINATION_MESSAGE_POLICY = "FallbackToLogsOnError"


def pull_policy(image: str) -> str:
    """IfNotPresent for `name:tag` (tag other than latest) or `name@sha256:...`, Always otherwise."""
    if "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "IfNotPresent" if tag and tag != "latest" else "Always"


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
    jupyter: bool = False,
    init_containers: Sequence[JSON] = (),
) -> tuple[dict[str, str], JSON]:
    """(pod annotations, pod spec) of the single-container workload pod of `obj`.

    `container_extra` holds container fields placed after `env` (ports, readinessProbe); `jupyter` adds
    Jupyter's directories to the scratch env defaults; `init_containers` run before it (see
    `init_container`). Raises InvalidSpecError (image, env, params) and UnsupportedGPUError (resources.gpu).
    """
    image = require_image(obj)
    resources, node_selector, tolerations = container_resources(obj.spec.resources, ctx.cloud)
    volumes.add(scratch_volumes())
    body: JSON = {"name": container, "image": image, "imagePullPolicy": pull_policy(image)}
    put(body, "command", list(command or []))
    env = container_env(
        env=obj.spec.env, params=obj.spec.params, extra=env_extra, defaults=scratch_env(jupyter=jupyter)
    )
    put(body, "env", env)
    for key, value in (container_extra or {}).items():
        put(body, key, value)
    put(body, "resources", resources)
    body["terminationMessagePolicy"] = TERMINATION_MESSAGE_POLICY
    put(body, "volumeMounts", volumes.mounts)
    body["securityContext"] = container_security_context()

    spec: JSON = {"serviceAccountName": service_account}
    put(spec, "restartPolicy", restart_policy)
    spec["securityContext"] = pod_security_context()
    put(spec, "nodeSelector", node_selector)
    put(spec, "tolerations", tolerations)
    put(spec, "initContainers", list(init_containers))
    spec["containers"] = [body]
    put(spec, "volumes", volumes.volumes)
    annotations = {ANNOTATION_DEFAULT_CONTAINER: container}
    annotations.update((k, v) for k, v in volumes.annotations.items() if k != ANNOTATION_DEFAULT_CONTAINER)
    return annotations, spec


def init_container(name: str, image: str, *, command: Sequence[str], mounts: Sequence[JSON]) -> JSON:
    """A helper container run before a workload, with the workload's restricted context and pull policy."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": pull_policy(image),
        "command": list(command),
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
        "volumeMounts": [volume_mount(m) for m in mounts],
        "securityContext": container_security_context(),
    }
