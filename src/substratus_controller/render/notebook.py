"""The Notebook's children: the Pod, the Secret holding its Jupyter token, and the optional work PVC.

Invariants (docs/upstream-behaviour.md §7.1 HEAD, docs/decisions.md §2.5 and §2.10):
- Pod `<name>-notebook`: container `notebook`, SA `notebook`, restartPolicy left to the default (Always),
  restricted security contexts, port `notebook` 8888, readiness `GET /api` on 8888.
- Command: `spec.command` when set; when unset, upstream's
  `jupyter lab --allow-root --ip=0.0.0.0 --NotebookApp.token=$(NOTEBOOK_TOKEN) --notebook-dir=/content`.
  An explicit empty command means the image's entrypoint (as upstream, where `[]` is non-nil).
- `NOTEBOOK_TOKEN` comes from the Pod's own Secret `<name>-notebook-token-<nonce>` (key `token`) through
  secretKeyRef, instead of upstream's literal `default`; user env may not set it (InvalidSpecError). The
  nonce makes the name unknown until the controller has created the Secret (render/names.py).
- Mounts: params, own `artifacts/` RW at /content/artifacts, dataset RO at /content/data, model RO at
  /content/model, and with a PVC the volume `work` at /content/work (survives suspend/resume).
- A writable /content: upstream notebooks save into /content, which a root-built image's `WORKDIR
  /content` makes read-only for uid 1000. The emptyDir `content` is mounted at /content, and the init
  container `content` (the notebook's own image, same user) first copies the image's /content into it,
  skipping what is mounted over it (data, model, artifacts, params.json). The copy lives as long as the
  Pod (suspend deletes it); `kubectl notebook` syncs changed files back, /content/work persists with a PVC.
  The image needs `sh` and `cp` for that (it needs python3 anyway for the sync watcher).
- The Secret and the PVC are owned by the Notebook. The PVC lives as long as it does (suspend keeps it); a
  token Secret lives as long as its Pod (plan/notebook.py deletes it with the Pod), so a resumed or
  recreated notebook has a new token.
"""

from __future__ import annotations

import base64

from substratus_controller.api.v1 import Notebook
from substratus_controller.cloud.base import BucketURL, BucketVolume
from substratus_controller.constants import (
    ANNOTATION_TOKEN_SECRET,
    CONTAINER_NOTEBOOK,
    CONTENT_DIR,
    NOTEBOOK_PORT,
    NOTEBOOK_TOKEN_ENV,
    ROLE_RUN,
    SA_NOTEBOOK,
    Kind,
)
from substratus_controller.jsontypes import JSON

from ._pod import PodVolumes, init_container, workload_pod
from .bodies import child_metadata, identity, require_image
from .context import RenderContext
from .labels import selector
from .names import notebook_pod_name, notebook_pvc_name
from .workloads import dependency_mounts, own_artifacts

TOKEN_KEY = "token"
CONTENT_VOLUME = "content"
CONTENT_COPY_PATH = "/substratus/content"
INIT_CONTAINER = "content"
# copy the image's /content (dot-files too) into the emptyDir, except what is mounted over it
COPY_CONTENT = (
    f"[ -d {CONTENT_DIR} ] || exit 0; for f in {CONTENT_DIR}/* {CONTENT_DIR}/.[!.]* {CONTENT_DIR}/..?*; do "
    '[ -e "$f" ] || [ -L "$f" ] || continue; case "${f##*/}" in data|model|artifacts|params.json) continue;; esac; '
    f'cp -Rp "$f" {CONTENT_COPY_PATH}/ || exit 1; done'
)
WORK_VOLUME = "work"
WORK_PATH = f"{CONTENT_DIR}/work"
PORT_NAME = "notebook"
READINESS_PATH = "/api"
DEFAULT_COMMAND = (
    "jupyter",
    "lab",
    "--allow-root",
    "--ip=0.0.0.0",
    f"--NotebookApp.token=$({NOTEBOOK_TOKEN_ENV})",
    f"--notebook-dir={CONTENT_DIR}",
)


def notebook_pod(
    nb: Notebook,
    ctx: RenderContext,
    *,
    token_secret: str,
    model_url: BucketURL | None,
    dataset_url: BucketURL | None,
    pvc: str | None,
) -> JSON:
    """The Pod `<name>-notebook` running Jupyter (or `spec.command`)."""
    name, _ = identity(nb, Kind.NOTEBOOK)
    if not token_secret:
        raise ValueError("notebook_pod needs the token Secret's name")
    volumes = PodVolumes()
    volumes.add_params(Kind.NOTEBOOK, name)
    own_artifacts(volumes, nb, Kind.NOTEBOOK, ctx)
    dependency_mounts(
        volumes,
        nb,
        ctx,
        model_ref=nb.spec.model.name if nb.spec.model else None,
        model_url=model_url,
        dataset_ref=nb.spec.dataset.name if nb.spec.dataset else None,
        dataset_url=dataset_url,
    )
    volumes.add(
        BucketVolume(
            volumes=[{"name": CONTENT_VOLUME, "emptyDir": {}}],
            mounts=[{"name": CONTENT_VOLUME, "mountPath": CONTENT_DIR}],
        )
    )
    if pvc:
        volumes.add(
            BucketVolume(
                volumes=[{"name": WORK_VOLUME, "persistentVolumeClaim": {"claimName": pvc}}],
                mounts=[{"name": WORK_VOLUME, "mountPath": WORK_PATH}],
            )
        )
    copy_content = init_container(INIT_CONTAINER, require_image(nb), command=["sh", "-c", COPY_CONTENT],
                                  mounts=[{"name": CONTENT_VOLUME, "mountPath": CONTENT_COPY_PATH}])  # fmt: skip
    token_env = {"name": NOTEBOOK_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": token_secret, "key": TOKEN_KEY}}}
    annotations, spec = workload_pod(
        nb,
        ctx,
        container=CONTAINER_NOTEBOOK,
        service_account=SA_NOTEBOOK,
        volumes=volumes,
        command=DEFAULT_COMMAND if nb.spec.command is None else nb.spec.command,
        env_extra=[token_env],
        jupyter=True,
        init_containers=[copy_content],
        container_extra={
            "ports": [{"name": PORT_NAME, "containerPort": NOTEBOOK_PORT}],
            "readinessProbe": {"httpGet": {"path": READINESS_PATH, "port": NOTEBOOK_PORT}},
        },
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": child_metadata(
            nb,
            Kind.NOTEBOOK,
            name=notebook_pod_name(name),
            role=ROLE_RUN,
            annotations={**annotations, ANNOTATION_TOKEN_SECRET: token_secret},
        ),
        "spec": spec,
    }


def notebook_token_secret(nb: Notebook, *, name: str, token: str) -> JSON:
    """The Secret `name` (type Opaque, key `token`) holding the Jupyter token of one Pod."""
    if not token:
        raise ValueError("the notebook token must not be empty")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": child_metadata(nb, Kind.NOTEBOOK, name=name, role=None),
        "type": "Opaque",
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode("ascii")},
    }


def pod_token_secret(pod: JSON) -> str | None:
    """The name of the token Secret a notebook Pod reads, from its ANNOTATION_TOKEN_SECRET (the Pod cache keeps
    metadata only), or None. The annotation and the NOTEBOOK_TOKEN secretKeyRef are rendered from one value
    and the applied digest covers both, so an edited annotation makes the Pod out of date (recreated)."""
    name = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TOKEN_SECRET)
    return name if isinstance(name, str) and name else None


def notebook_network_policy(nb: Notebook) -> JSON:
    """The NetworkPolicy `<name>-notebook` that admits no ingress to the notebook Pod from any pod or address
    (`--notebook-network-policy deny-ingress`). `kubectl port-forward` and the kubelet's probes still reach it:
    they do not cross the pod network. Egress is left alone (notebooks install packages, fetch models). It
    takes effect where the network plugin enforces NetworkPolicies."""
    name, _ = identity(nb, Kind.NOTEBOOK)
    meta = child_metadata(nb, Kind.NOTEBOOK, name=notebook_pod_name(name), role=None)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {"podSelector": {"matchLabels": selector(Kind.NOTEBOOK, name)}, "policyTypes": ["Ingress"]},
    }


def notebook_pvc(nb: Notebook, *, size: str) -> JSON:
    """The PersistentVolumeClaim `<name>-notebook` (ReadWriteOnce, `size`) mounted at /content/work."""
    name, _ = identity(nb, Kind.NOTEBOOK)
    if not size:
        raise ValueError("the notebook PVC needs a size")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(nb, Kind.NOTEBOOK, name=notebook_pvc_name(name), role=None),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }
