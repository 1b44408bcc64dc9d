"""The decisions, pure: from what the engine observed to a complete Plan.

    plan_<kind>(observation, ctx=RenderContext, now=RFC 3339, rng=Random) -> Plan

- observation.py: the per-kind values the plans read (the object, its children, its dependencies).
- outcome.py:     the Plan (every child body, every delete, the status, the requeue, declared effects).
- prologue.py, status.py: what the kinds share (parse, build, gates, prerequisites of pods, status).
- build.py, upload.py, runs.py: the image build, the signed-URL upload handshake, Job-driven runs.
- dataset.py, model.py, notebook.py, server.py: one plan per kind.

No I/O by contract (pyproject's import-linter: no client, no asyncio, no os, no clock); `now` and `rng`
come from the caller, so the same observation, `now` and seed give the same Plan.
"""

from __future__ import annotations

from random import Random

from substratus_controller.render.context import RenderContext

from .dataset import plan_dataset
from .model import plan_model
from .notebook import plan_notebook
from .observation import (
    DatasetObservation,
    ModelObservation,
    NotebookObservation,
    Observation,
    ServerObservation,
)
from .outcome import Child, Plan
from .server import plan_server


def plan_for(seen: Observation, *, ctx: RenderContext, now: str, rng: Random) -> Plan:
    """The Plan of `seen`, by its kind of observation."""
    if isinstance(seen, DatasetObservation):
        return plan_dataset(seen, ctx=ctx, now=now, rng=rng)
    if isinstance(seen, ModelObservation):
        return plan_model(seen, ctx=ctx, now=now, rng=rng)
    if isinstance(seen, NotebookObservation):
        return plan_notebook(seen, ctx=ctx, now=now, rng=rng)
    if isinstance(seen, ServerObservation):
        return plan_server(seen, ctx=ctx, now=now, rng=rng)
    raise TypeError(f"no plan for {type(seen).__name__}")


__all__ = [
    "Child",
    "DatasetObservation",
    "ModelObservation",
    "NotebookObservation",
    "Observation",
    "Plan",
    "ServerObservation",
    "plan_dataset",
    "plan_for",
    "plan_model",
    "plan_notebook",
    "plan_server",
]
