"""Properties every plan has, over every row of the four kinds' tables and over simulated reconcile loops.

(a) For every table row: the plan is a function of its inputs (the same observation, `now` and seed give
    equal Plans), it does not mutate the observation, its status is consistent (`ready` mirrors the Ready
    condition, every condition is stamped with the object's generation), it only deletes children it was
    shown, and every child it writes (but the namespace's shared ServiceAccounts) is owned by the object;
    and what it writes shares no dict or list with the observation.
(b) Convergence: a fake API server stores what a plan writes (applied bodies stamped as the applier stamps
    them, created ones once, deletes carried out, the status kept on the object); the observation built back
    from that store yields a plan that changes no child (no deletes, no creates, no new Job or Pod, every
    applied body up to date with the stored one) and is a fixed point (planning once more gives the same
    Plan). Varied with hypothesis over names, params, env and images.
(c) Life cycle: in a world where every Job completes, every Pod becomes ready and every upload arrives,
    repeated reconciles bring a fresh object (with or without a build) to Ready and then change nothing.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from substratus_controller.constants import ANNOTATION_APPLIED, ANNOTATION_NOTEBOOK_STORAGE, ConditionType, Kind
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
from substratus_controller.render.context import RenderContext
from substratus_controller.render.names import (
    build_job_name,
    is_notebook_token_secret_name,
    loader_job_name,
    modeller_job_name,
    notebook_pod_name,
    server_name,
)
from substratus_controller.render.notebook import pod_token_secret
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.resource import Resource
from substratus_controller.runtime.stamp import is_up_to_date, stamp

from . import test_dataset_plan, test_model_plan, test_notebook_plan, test_server_plan
from .builders import (
    CTX,
    GIT,
    GKE_CTX,
    JOB_STATES,
    MD5,
    NOW,
    UPLOAD,
    Row,
    dep,
    kind_of,
    name_of,
    obj,
    pod_status,
    rng,
)

TABLES = {
    Kind.DATASET: test_dataset_plan.TABLE,
    Kind.MODEL: test_model_plan.TABLE,
    Kind.NOTEBOOK: test_notebook_plan.TABLE,
    Kind.SERVER: test_server_plan.TABLE,
}
ALL_ROWS = [pytest.param(row, id=f"{kind.singular}:{row.id}") for kind, table in TABLES.items() for row in table]


def plan_of(seen: Observation, ctx: RenderContext) -> Plan:
    return plan_for(seen, ctx=ctx, now=NOW, rng=rng())


def observed(seen: Observation) -> list[JSON]:
    """Every child body the observation holds (what a plan may delete)."""
    out = [seen.build_job, *seen.pods]
    for name in ("job", "pod", "deployment"):
        out.append(getattr(seen, name, None))
    return [body for body in out if body is not None]


# ------------------------------------------------------------------------------------------------ (a)
@pytest.mark.parametrize("row", ALL_ROWS)
def test_equal_inputs_give_equal_plans(row: Row) -> None:
    assert plan_of(row.seen, row.ctx) == plan_of(row.seen, row.ctx)


@pytest.mark.parametrize("row", ALL_ROWS)
def test_planning_does_not_mutate_the_observation(row: Row) -> None:
    before = copy.deepcopy(row.seen)
    plan_of(row.seen, row.ctx)
    assert row.seen == before


@pytest.mark.parametrize("row", ALL_ROWS)
def test_the_status_is_consistent(row: Row) -> None:
    status = plan_of(row.seen, row.ctx).status
    generation = row.seen.obj["metadata"]["generation"]
    ready = [c for c in status["conditions"] if c["type"] == ConditionType.READY.value]
    assert len(ready) == 1
    assert status["ready"] is (ready[0]["status"] == "True")
    assert status["observedGeneration"] == generation
    assert {c["observedGeneration"] for c in status["conditions"]} == {generation}
    assert all(c["lastTransitionTime"] for c in status["conditions"])


@pytest.mark.parametrize("row", ALL_ROWS)
def test_only_observed_children_are_deleted(row: Row) -> None:
    """Deletes are observed children, or a token Secret (never observed: Secrets are not read) that an
    observed Pod names under the controller's nonce naming."""
    plan = plan_of(row.seen, row.ctx)
    shown = observed(row.seen)
    named = {pod_token_secret(c) for c in shown if c.get("kind") == "Pod"}
    for res, body in plan.delete:
        if res == k8s.SECRETS:
            name = body["metadata"]["name"]
            assert name in named
            assert is_notebook_token_secret_name(row.seen.obj["metadata"]["name"], name)
        else:
            assert any(body is child for child in shown)


@pytest.mark.parametrize("row", ALL_ROWS)
def test_written_children_are_owned_by_the_object(row: Row) -> None:
    plan = plan_of(row.seen, row.ctx)
    meta = row.seen.obj["metadata"]
    for res, body in [*plan.create, *plan.apply]:
        owners = body["metadata"].get("ownerReferences") or []
        assert [o["uid"] for o in owners] == [meta["uid"]], f"{res.kind}/{body['metadata']['name']}"
        assert body["metadata"]["namespace"] == meta["namespace"]


def containers(value: Any) -> list[int]:
    """The ids of every dict and list inside `value` (itself included)."""
    if isinstance(value, dict):
        return [id(value), *(i for v in value.values() for i in containers(v))]
    if isinstance(value, list | tuple):
        return [*([id(value)] if isinstance(value, list) else []), *(i for v in value for i in containers(v))]
    return []


def test_what_a_plan_writes_shares_no_mutable_value_with_the_observation() -> None:
    shared = []
    for param in ALL_ROWS:
        (row,) = param.values
        assert isinstance(row, Row)
        plan = plan_of(row.seen, row.ctx)
        seen = set(containers([row.seen.obj, *observed(row.seen), *getattr(row.seen, "__dict__", {}).values()]))
        written = containers([plan.status, *(body for _, body in plan.children())])
        if seen & set(written):
            shared.append(param.id)
    assert shared == [], f"rows whose plan shares a dict or list with the observation: {shared}"


# ------------------------------------------------------------------------------------------------ (b)
Key = tuple[str, str]


@dataclass
class World:
    """A fake API server for one object: its children by (kind, name), the object itself, its dependencies
    and what storage holds."""

    raw: JSON
    ctx: RenderContext = CTX
    deps: dict[str, JSON] = field(default_factory=dict)  # observation field -> dependency
    stored_md5: str | None = None
    children: dict[Key, JSON] = field(default_factory=dict)
    uids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def kind(self) -> Kind:
        return kind_of(self.raw)

    def write(self, res: Resource, body: JSON) -> None:
        """Store `body` as the applier leaves it: stamped, with a uid (kept on an update, as is the status)."""
        key = (res.kind, body["metadata"]["name"])
        old = self.children.get(key)
        stored = stamp(body, ANNOTATION_APPLIED)
        uid = old["metadata"]["uid"] if old else f"uid-{next(self.uids)}"
        stored["metadata"] = {**stored["metadata"], "uid": uid}
        if old is not None and "status" in old:
            stored["status"] = old["status"]
        self.children[key] = stored

    def carry_out(self, plan: Plan) -> None:
        """What the engine does with `plan` (controllers/steps.py), against this store."""
        for res, body in plan.delete:
            self.children.pop((res.kind, body["metadata"]["name"]), None)
        for res, body in [*plan.mounts, *((k8s.SERVICEACCOUNTS, sa) for sa in plan.service_accounts)]:
            self.write(res, body)
        for res, body in plan.create:
            if (res.kind, body["metadata"]["name"]) not in self.children:
                self.write(res, body)
        for res, body in plan.apply:
            self.write(res, body)
        status = copy.deepcopy(plan.status)
        if plan.sign_upload is not None:
            status.setdefault("buildUpload", {})["signedURL"] = "https://upload.example/signed"
        self.raw = {**self.raw, "status": status}
        if plan.spec_image is not None:  # a spec change: the API server bumps the generation
            meta = self.raw["metadata"]
            spec = {**self.raw["spec"], "image": plan.spec_image}
            self.raw = {**self.raw, "spec": spec, "metadata": {**meta, "generation": meta["generation"] + 1}}

    def child(self, kind: str, name: str) -> JSON | None:
        return self.children.get((kind, name))

    def observe(self) -> Observation:
        """The observation the engine would build from this store."""
        name = name_of(self.raw)
        common: dict[str, Any] = {
            "obj": self.raw,
            "build_job": self.child("Job", build_job_name(self.kind, name)),
            "stored_md5": self.stored_md5,
            **self.deps,
        }
        if self.kind == Kind.DATASET:
            return DatasetObservation(job=self.child("Job", loader_job_name(name)), **common)
        if self.kind == Kind.MODEL:
            return ModelObservation(job=self.child("Job", modeller_job_name(name)), **common)
        if self.kind == Kind.NOTEBOOK:
            return NotebookObservation(pod=self.child("Pod", notebook_pod_name(name)), **common)
        return ServerObservation(deployment=self.child("Deployment", server_name(name)), **common)

    def plan(self) -> Plan:
        return plan_for(self.observe(), ctx=self.ctx, now=NOW, rng=rng())

    def succeed(self) -> None:
        """The cluster does its part: Jobs complete, the notebook Pod and the Deployment become ready, the
        client uploads what was asked for."""
        for (kind, name), body in list(self.children.items()):
            if kind == "Job":
                self.children[(kind, name)] = {**body, "status": JOB_STATES["Complete"]}
            elif kind == "Pod":
                self.children[(kind, name)] = {**body, "status": pod_status("ready")}
            elif kind == "Deployment":
                self.children[(kind, name)] = {**body, "status": {"replicas": 1, "readyReplicas": 1}}
        if (self.raw.get("status") or {}).get("buildUpload", {}).get("signedURL"):
            self.stored_md5 = MD5


def names(children: list[tuple[Resource, JSON]]) -> list[str]:
    return [f"{res.kind}/{body['metadata']['name']}" for res, body in children]


def assert_no_child_changes(world: World, plan: Plan) -> None:
    """`plan`, made from what `world` stores, changes no child."""
    assert names(plan.delete) == [], "deletes"
    assert names(plan.create) == [], "creates"
    assert names([(res, body) for res, body in plan.apply if res in (k8s.JOBS, k8s.PODS)]) == [], "new Jobs or Pods"
    assert (plan.spec_image, plan.new_image, plan.sign_upload) == (None, None, None)
    accounts = [(k8s.SERVICEACCOUNTS, sa) for sa in plan.service_accounts]
    for res, body in [*plan.mounts, *accounts, *plan.apply]:
        stored = world.child(res.kind, body["metadata"]["name"])
        assert is_up_to_date(stamp(body, ANNOTATION_APPLIED), stored, ANNOTATION_APPLIED), (
            f"{res.kind}/{body['metadata']['name']} differs from what the previous plan applied"
        )


def converges(world: World) -> None:
    """(b): plan, carry out, plan again from the store: no child changes, then a fixed point."""
    world.carry_out(world.plan())
    second = world.plan()
    assert_no_child_changes(world, second)
    world.carry_out(second)
    assert world.plan() == second


def nb_storage() -> JSON:
    return obj(Kind.NOTEBOOK, "nb", annotations={ANNOTATION_NOTEBOOK_STORAGE: "5Gi"})


BASE, DATA, LLM = dep(Kind.MODEL, "base"), dep(Kind.DATASET, "data"), dep(Kind.MODEL, "llm")
WORLDS = {
    "dataset/fresh": lambda: World(obj(Kind.DATASET, "d")),
    "dataset/params-env": lambda: World(obj(Kind.DATASET, "d", params={"n": 3, "split": "train"},
                                            env={"HF_TOKEN": "${{ secrets.hf.token }}"})),
    "dataset/git-build": lambda: World(obj(Kind.DATASET, "d", image=None, git=GIT)),
    "dataset/git-build-and-image": lambda: World(obj(Kind.DATASET, "d", git=GIT)),
    "dataset/upload-stored": lambda: World(obj(Kind.DATASET, "d", image=None, upload=UPLOAD), stored_md5=MD5),
    "model/fresh": lambda: World(obj(Kind.MODEL, "m")),
    "model/ready-deps": lambda: World(obj(Kind.MODEL, "m", model="base", dataset="data"),
                                      deps={"base_model": BASE, "dataset": DATA}),
    "model/deps-missing": lambda: World(obj(Kind.MODEL, "m", model="base", dataset="data")),
    "model/git-build": lambda: World(obj(Kind.MODEL, "m", image=None, git=GIT)),
    "model/gke-gpu": lambda: World(obj(Kind.MODEL, "m", resources={"gpu": {"type": "nvidia-l4", "count": 1}}),
                                   ctx=GKE_CTX),
    "notebook/fresh": lambda: World(obj(Kind.NOTEBOOK, "nb")),
    "notebook/storage": lambda: World(nb_storage()),
    "notebook/ready-deps": lambda: World(obj(Kind.NOTEBOOK, "nb", model="base", dataset="data"),
                                         deps={"model": BASE, "dataset": DATA}),
    "notebook/git-build": lambda: World(obj(Kind.NOTEBOOK, "nb", image=None, git=GIT)),
    "notebook/suspended": lambda: World(obj(Kind.NOTEBOOK, "nb", suspend=True)),
    "server/ready-model": lambda: World(obj(Kind.SERVER, "s", model="llm"), deps={"model": LLM}),
    "server/git-build": lambda: World(obj(Kind.SERVER, "s", model="llm", image=None, git=GIT), deps={"model": LLM}),
    "server/model-missing": lambda: World(obj(Kind.SERVER, "s", model="llm")),
    "server/gke": lambda: World(obj(Kind.SERVER, "s", model="llm"), ctx=GKE_CTX, deps={"model": LLM}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(WORLDS))
def test_applying_the_plan_yields_no_child_changes(name: str) -> None:
    converges(WORLDS[name]())


NAMES = st.from_regex(r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?", fullmatch=True)
PARAMS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True),
    st.integers(-5, 5) | st.text("abc xyz-_.", max_size=8),
    max_size=3,
)
ENV = st.dictionaries(st.from_regex(r"E_[A-Z0-9]{1,6}", fullmatch=True), st.text("abc XYZ/:=", max_size=8), max_size=3)
IMAGES = st.from_regex(r"registry\.example\.com/[a-z]{1,8}:v[0-9]{1,2}", fullmatch=True)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Any valid fresh object (name, params, env, image or build, a ready dependency) and its world."""
    kind = draw(st.sampled_from(list(Kind)))
    image = draw(st.none() | IMAGES)
    build = draw(st.sampled_from(["none", "git", "upload"] if image is not None else ["git", "upload"]))
    with_dataset = kind in (Kind.MODEL, Kind.NOTEBOOK) and draw(st.booleans())
    deps = {"dataset": DATA} if with_dataset else {"model": LLM} if kind == Kind.SERVER else {}
    raw = obj(kind, draw(NAMES), image=image, git=GIT if build == "git" else None,
              upload=UPLOAD if build == "upload" else None, params=draw(PARAMS), env=draw(ENV),
              dataset="data" if with_dataset else None, model="llm" if kind == Kind.SERVER else None)  # fmt: skip
    return World(raw, deps=deps, stored_md5=MD5 if build == "upload" else None)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_applying_the_plan_yields_no_child_changes_for_any_object(world: World) -> None:
    reasons = {c["reason"] for c in world.plan().status["conditions"]}
    assert "InvalidSpec" not in reasons, "the strategy should draw valid objects only"
    converges(world)


# ------------------------------------------------------------------------------------------------ (c)
def to_ready(world: World, rounds: int = 8) -> Plan:
    """Reconcile `world` until its object is Ready with nothing left to change in its spec (a finished
    rebuild reports ready while it sets spec.image, which starts a new run), the cluster succeeding at
    everything in between."""
    for _ in range(rounds):
        plan = world.plan()
        world.carry_out(plan)
        if plan.status["ready"] and plan.spec_image is None:
            return plan
        world.succeed()
    raise AssertionError(f"not ready after {rounds} reconciles: {world.raw['status']['conditions']}")


@pytest.mark.parametrize(
    "name", [n for n in WORLDS if not n.endswith(("/deps-missing", "/model-missing", "/suspended"))]
)
def test_a_succeeding_cluster_brings_the_object_to_ready_and_then_nothing_changes(name: str) -> None:
    world = WORLDS[name]()
    ready = to_ready(world)
    again = world.plan()
    assert_no_child_changes(world, again)
    assert again.status == ready.status


def test_an_upload_build_goes_from_awaiting_to_ready() -> None:
    world = World(obj(Kind.DATASET, "d", image=None, upload=UPLOAD))
    first = world.plan()
    assert first.sign_upload is not None
    world.carry_out(first)
    world.succeed()  # the client uploads
    assert to_ready(world).status["ready"]
