"""Renders one golden case: `tests/golden/<kind>/<case>/input.yaml` -> all children, in a fixed order.

input.yaml holds the parent object as a user would write it (with metadata.namespace and metadata.uid filled
in, as the API server would), optionally followed by a second document `context:` with what the controller
would supply:

    cloud: local | fake-gke          (default local; see drivers.py)
    builder: kaniko | buildah        (default: the cloud's, as the controller's settings: local buildah,
                                      fake-gke kaniko like gcp and aws)
    insecureRegistry: true | false   (default: true on local only, as the controller's settings)
    runID, buildID: label values     (defaults "run-1" / "build-1")
    token: the notebook token        (default "token-1")
    pvcSize: e.g. 20Gi               (notebook work volume; none when absent)
    modelURL, datasetURL: bucket URLs of the dependencies (their status.artifacts.url); default: computed

Order of the children: build ServiceAccount and build Job (when spec.build is set); then, once spec.image is
set, the workload ServiceAccount, the params ConfigMap and the kind's children (Dataset: loader Job; Model:
modeller Job; Notebook: token Secret, PVC, Pod; Server: Service, Deployment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from substratus_controller.api.v1 import Dataset, Model, Notebook, Server
from substratus_controller.cloud.base import BucketURL
from substratus_controller.constants import (
    BUILDER_BUILDAH,
    BUILDER_KANIKO,
    SA_BUILDER,
    SA_DATA_LOADER,
    SA_MODEL_SERVER,
    SA_MODELLER,
    SA_NOTEBOOK,
    Kind,
)
from substratus_controller.jsontypes import JSON
from substratus_controller.render import (
    RenderContext,
    build_job,
    loader_job,
    modeller_job,
    notebook_pod,
    notebook_pvc,
    notebook_token_secret,
    params_configmap,
    server_deployment,
    server_service,
    service_account,
    target_image,
)
from substratus_controller.render.names import notebook_pvc_name, notebook_token_secret_name

from .drivers import driver

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
CLASSES = {"Dataset": Dataset, "Model": Model, "Notebook": Notebook, "Server": Server}


def case_dirs() -> list[Path]:
    return sorted(p.parent for p in GOLDEN.glob("*/*/input.yaml"))


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def load_input(case: Path) -> tuple[Dataset | Model | Notebook | Server, JSON]:
    docs = [d for d in yaml.safe_load_all((case / "input.yaml").read_text()) if d is not None]
    obj_doc, context = docs[0], (docs[1]["context"] if len(docs) > 1 else {})
    obj = CLASSES[obj_doc["kind"]].model_validate(obj_doc)
    return obj, context


def _url(context: JSON, key: str, cloud_url: BucketURL) -> BucketURL:
    return BucketURL.parse(context[key]) if key in context else cloud_url


def render_case(case: Path) -> tuple[list[JSON], str]:
    """(children in order, cloud driver name) of one case."""
    obj, context = load_input(case)
    cloud_name = context.get("cloud", "local")
    ctx = RenderContext(
        cloud=driver(cloud_name),
        builder=context.get("builder", BUILDER_BUILDAH if cloud_name == "local" else BUILDER_KANIKO),
        insecure_registry=context.get("insecureRegistry", cloud_name == "local"),
    )
    kind, ns, name = obj.KIND, obj.metadata.namespace, obj.metadata.name
    out: list[JSON] = []
    if obj.spec.build is not None:
        target = target_image(obj, kind, ctx.cloud)
        out.append(service_account(SA_BUILDER, ns, ctx.cloud))
        out.append(build_job(obj, kind, ctx, target=target, build_id=context.get("buildID", "build-1")))
    if not obj.spec.image:
        return out, cloud_name

    def dep_url(key: str, dep_kind: Kind, ref: Any) -> BucketURL | None:
        if ref is None:
            return None
        return _url(context, key, ctx.cloud.artifact_url(dep_kind, ns, ref.name))

    run_id = context.get("runID", "run-1")
    if isinstance(obj, Dataset):
        out += [
            service_account(SA_DATA_LOADER, ns, ctx.cloud),
            params_configmap(obj, kind),
            loader_job(obj, ctx, run_id=run_id),
        ]
    elif isinstance(obj, Model):
        out += [
            service_account(SA_MODELLER, ns, ctx.cloud),
            params_configmap(obj, kind),
            modeller_job(
                obj,
                ctx,
                run_id=run_id,
                base_model_url=dep_url("modelURL", Kind.MODEL, obj.spec.model),
                dataset_url=dep_url("datasetURL", Kind.DATASET, obj.spec.dataset),
            ),
        ]
    elif isinstance(obj, Notebook):
        pvc_size = context.get("pvcSize")
        out += [
            service_account(SA_NOTEBOOK, ns, ctx.cloud),
            params_configmap(obj, kind),
            notebook_token_secret(obj, token=context.get("token", "token-1")),
        ]
        if pvc_size:
            out.append(notebook_pvc(obj, size=pvc_size))
        out.append(
            notebook_pod(
                obj,
                ctx,
                token_secret=notebook_token_secret_name(name),
                model_url=dep_url("modelURL", Kind.MODEL, obj.spec.model),
                dataset_url=dep_url("datasetURL", Kind.DATASET, obj.spec.dataset),
                pvc=notebook_pvc_name(name) if pvc_size else None,
            )
        )
    else:
        model_url = dep_url("modelURL", Kind.MODEL, obj.spec.model)
        assert model_url is not None
        out += [
            service_account(SA_MODEL_SERVER, ns, ctx.cloud),
            params_configmap(obj, kind),
            server_service(obj),
            server_deployment(obj, ctx, model_url=model_url),
        ]
    return out, cloud_name


def all_outputs() -> list[tuple[str, str, list[JSON]]]:
    """(case id, cloud, children) of every golden case."""
    out = []
    for case in case_dirs():
        children, cloud = render_case(case)
        out.append((case_id(case), cloud, children))
    return out
