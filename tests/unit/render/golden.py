"""Renders one golden case with the real plan: `tests/golden/<kind>/<case>/input.yaml` -> the Plan's children.

input.yaml holds the parent object as a user would write it (with metadata.namespace and metadata.uid filled
in, as the API server would), optionally followed by a second document `context:` with what the controller
would supply:

    cloud: local | gcp | aws         (default local; the real drivers, built offline: see drivers.py)
    builder: kaniko | buildah        (default: the cloud's, as the controller's settings: local buildah,
                                      gcp and aws kaniko)
    insecureRegistry: true | false   (default: true on local only, as the controller's settings)
    notebookNetworkPolicy: none | deny-ingress   (default none, as --notebook-network-policy)

The observation is that of the first reconcile of a fresh object: no children yet, the build context (for
uploads) already in storage, and every dependency the spec names present and ready. The plan's `now` is
fixed and its randomness seeded with the case's name (the notebook token). The children are the Plan's, in
the order the engine writes them: mount objects, ServiceAccounts, created children, applied children.
"""

from __future__ import annotations

from pathlib import Path
from random import Random

import yaml

from substratus_controller.api.v1 import Dataset, Model, Notebook, Server
from substratus_controller.constants import Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import (
    DatasetObservation,
    ModelObservation,
    NotebookObservation,
    Observation,
    Plan,
    ServerObservation,
    plan_for,
)
from substratus_controller.render import RenderContext
from substratus_controller.settings import DEFAULT_BUILDER, INSECURE_REGISTRY_BY_DEFAULT

from .drivers import DRIVERS, driver

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
CLASSES = {"Dataset": Dataset, "Model": Model, "Notebook": Notebook, "Server": Server}
CONTEXT_KEYS = {"cloud", "builder", "insecureRegistry", "notebookNetworkPolicy"}
NOW = "2026-01-01T00:00:00Z"


def case_dirs() -> list[Path]:
    return sorted(p.parent for p in GOLDEN.glob("*/*/input.yaml"))


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def load_raw(case: Path) -> tuple[JSON, JSON]:
    """(the object as a dict, the context) of a case; an unknown context key is an error in the case."""
    docs = [d for d in yaml.safe_load_all((case / "input.yaml").read_text()) if d is not None]
    obj_doc, context = docs[0], (docs[1]["context"] if len(docs) > 1 else {})
    unknown = set(context) - CONTEXT_KEYS
    if unknown:
        raise ValueError(f"{case}/input.yaml: unknown context keys {sorted(unknown)} (known: {sorted(CONTEXT_KEYS)})")
    if context.get("cloud", "local") not in DRIVERS:
        raise ValueError(f"{case}/input.yaml: unknown cloud {context['cloud']!r} (known: {sorted(DRIVERS)})")
    return obj_doc, context


def load_input(case: Path) -> tuple[Dataset | Model | Notebook | Server, JSON]:
    obj_doc, context = load_raw(case)
    return CLASSES[obj_doc["kind"]].model_validate(obj_doc), context


def _ready(kind: Kind, namespace: str, name: str) -> JSON:
    status: JSON = {"ready": True}
    return {"apiVersion": "substratus.ai/v1", "kind": kind.value, "metadata": {"name": name,
            "namespace": namespace}, "status": status}  # fmt: skip


def observation(raw: JSON, context: JSON) -> Observation:
    """The first reconcile's observation of `raw` (see the module docstring)."""
    spec, ns = raw["spec"], raw["metadata"]["namespace"]
    upload = (spec.get("build") or {}).get("upload")
    stored = upload["md5Checksum"].lower() if upload else None

    def dep(field: str, kind: Kind) -> JSON | None:
        ref = spec.get(field)
        return _ready(kind, ns, ref["name"]) if ref else None

    model, dataset = dep("model", Kind.MODEL), dep("dataset", Kind.DATASET)
    kind = raw["kind"]
    if kind == "Dataset":
        return DatasetObservation(obj=raw, stored_md5=stored)
    if kind == "Model":
        return ModelObservation(obj=raw, stored_md5=stored, base_model=model, dataset=dataset)
    if kind == "Notebook":
        return NotebookObservation(obj=raw, stored_md5=stored, model=model, dataset=dataset)
    return ServerObservation(obj=raw, stored_md5=stored, model=model)


def plan_case(case: Path, cloud: str | None = None) -> tuple[Plan, str]:
    """(the Plan, cloud driver name) of one case; `cloud` renders it on another cloud than its context's."""
    raw, context = load_raw(case)
    cloud_name = cloud or context.get("cloud", "local")
    ctx = RenderContext(
        cloud=driver(cloud_name),
        builder=context.get("builder", DEFAULT_BUILDER[cloud_name]),
        insecure_registry=context.get("insecureRegistry", cloud_name in INSECURE_REGISTRY_BY_DEFAULT),
        notebook_network_policy=context.get("notebookNetworkPolicy", "none"),
    )
    return plan_for(observation(raw, context), ctx=ctx, now=NOW, rng=Random(case_id(case))), cloud_name


def render_case(case: Path, cloud: str | None = None) -> tuple[list[JSON], str]:
    """(children in the engine's order, cloud driver name) of one case (on `cloud`, when given)."""
    plan, cloud_name = plan_case(case, cloud)
    return [body for _, body in plan.children()], cloud_name


def all_outputs() -> list[tuple[str, str, list[JSON]]]:
    """(case id, cloud, children) of every golden case."""
    out = []
    for case in case_dirs():
        children, cloud = render_case(case)
        out.append((case_id(case), cloud, children))
    return out
