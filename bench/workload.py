"""The benchmark's workload: Models and the writes the controller makes for each (bench/suite.py).

A Model with an image and params (no build): the controller applies the shared ServiceAccount
`substratus-modeller`, the params ConfigMap and the modeller Job, then writes the status. RAW and the kopf
operator write the same bodies, taken from the controller's own plan of the Model's first reconcile, so
the three variants differ only in how they get there.
"""

from __future__ import annotations

from random import Random

from substratus_controller.cloud.base import BucketURL
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import BUILDER_BUILDAH
from substratus_controller.jsontypes import JSON
from substratus_controller.plan import ModelObservation, plan_for
from substratus_controller.render.context import RenderContext
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.resource import Resource

IMAGE = "registry.example.com/bench/model:1"
NOW = "2026-01-01T00:00:00Z"


def render_context(artifacts: str) -> RenderContext:
    """The context the controller under test runs with (local cloud, `artifacts` a file:// URL)."""
    driver = LocalDriver(artifact_bucket=BucketURL.parse(artifacts), registry_url="localhost:5000")
    return RenderContext(cloud=driver, builder=BUILDER_BUILDAH, insecure_registry=True)


def model_manifest(name: str, namespace: str, i: int) -> JSON:
    return {
        "apiVersion": "substratus.ai/v1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": IMAGE, "params": {"epochs": 1 + i % 3, "name": name}},
    }


def first_writes(created: JSON, ctx: RenderContext) -> tuple[list[tuple[Resource, JSON]], JSON]:
    """(children in write order, status) of the controller's first reconcile of the created Model."""
    plan = plan_for(ModelObservation(obj=created), ctx=ctx, now=NOW, rng=Random(0))
    children = [(k8s.SERVICEACCOUNTS, sa) for sa in plan.service_accounts] + list(plan.apply)
    return children, plan.status
