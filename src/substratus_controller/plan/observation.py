"""What the engine observed for one object: the per-kind values every plan is a function of.

The engine gathers these from the informer caches (and, for an upload still to be built, from storage:
`stored_md5`); the plans read nothing else. Every field is a cached body as the API server returned it (or
None when absent), so a test builds an observation from plain dicts, without a control plane.

Invariants: an observation is immutable, and holds only the object's own children (labelled and owned as
ours) and the dependencies its spec names, in its namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from substratus_controller.constants import LABEL_ROLE, ROLE_RUN
from substratus_controller.jsontypes import JSON


@dataclass(frozen=True, kw_only=True)
class Observation:
    """What every kind's plan reads: the object, its build Job, its pods and the stored upload."""

    obj: JSON  # the object as cached (its status is the previous reconcile's report)
    build_job: JSON | None = None  # `<name>-<kind>-bld`
    pods: tuple[JSON, ...] = ()  # the object's pods, every role (build and run)
    stored_md5: str | None = None  # the uploaded build context's md5 in storage (read only when needed)

    @property
    def run_pods(self) -> list[JSON]:
        """The pods that run the workload (`role: run`), not the builder's."""
        return [p for p in self.pods if (p["metadata"].get("labels") or {}).get(LABEL_ROLE) == ROLE_RUN]


@dataclass(frozen=True, kw_only=True)
class DatasetObservation(Observation):
    job: JSON | None = None  # the loader Job


@dataclass(frozen=True, kw_only=True)
class ModelObservation(Observation):
    job: JSON | None = None  # the modeller Job
    base_model: JSON | None = None  # spec.model's Model
    dataset: JSON | None = None  # spec.dataset's Dataset


@dataclass(frozen=True, kw_only=True)
class NotebookObservation(Observation):
    pod: JSON | None = None  # the notebook Pod
    model: JSON | None = None
    dataset: JSON | None = None


@dataclass(frozen=True, kw_only=True)
class ServerObservation(Observation):
    deployment: JSON | None = None
    model: JSON | None = None
