"""The security model (README), at the decision layer: for specs drawn across (and beyond) the schema,
every plan ends with a definite Ready condition, never raises, and an invalid spec writes no children (fast
tier, hypothesis).

The drawn specs mix valid values with the awkward ones the schema admits or that arrive before it is
enforced (newlines, dots, negative and huge numbers, unknown fields, non-ASCII); the controller engine
adds nothing to what a plan decides, so a plan that always concludes is a controller that never loops on it.
"""

from __future__ import annotations

import re
from random import Random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from substratus_controller.constants import Reason
from substratus_controller.plan import (
    DatasetObservation,
    ModelObservation,
    NotebookObservation,
    Observation,
    ServerObservation,
    plan_for,
)

from .builders import CTX, NOW

AWKWARD = st.sampled_from(["", ".", "..", "..x", "FOO\n", "a b", "é", "${{ secrets.a.b }}", "${{", "x" * 300])
TEXT = st.one_of(st.text(max_size=20), AWKWARD)
NUMBER = st.one_of(st.integers(min_value=-(10**12), max_value=10**12), st.just(10**9))
NAMES = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), AWKWARD)
# What the API server admits as a custom object's name: a DNS subdomain (dots and leading digits included).
OBJECT_NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?", fullmatch=True)

SPEC = st.fixed_dictionaries(
    {},
    optional={
        "image": st.one_of(st.just("example.com/x:1"), TEXT),
        "command": st.lists(TEXT, max_size=3),
        "env": st.dictionaries(TEXT, TEXT, max_size=3),
        "params": st.dictionaries(TEXT, st.one_of(NUMBER, TEXT), max_size=3),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "cpu": NUMBER,
                "memory": NUMBER,
                "disk": NUMBER,
                "gpu": st.fixed_dictionaries({}, optional={"type": TEXT, "count": NUMBER}),
            },
        ),
        "model": st.fixed_dictionaries({"name": NAMES}),
        "dataset": st.fixed_dictionaries({"name": NAMES}),
        "suspend": st.booleans(),
        "build": st.one_of(
            st.fixed_dictionaries({"git": st.fixed_dictionaries({"url": TEXT}, optional={"tag": TEXT, "path": TEXT})}),
            st.fixed_dictionaries({"upload": st.fixed_dictionaries({"md5Checksum": TEXT, "requestID": TEXT})}),
        ),
        "unknownField": TEXT,
    },
)
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # what a Service's name must be
DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
KINDS = {
    "Dataset": DatasetObservation,
    "Model": ModelObservation,
    "Notebook": NotebookObservation,
    "Server": ServerObservation,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(KINDS)),
    name=OBJECT_NAMES,
    spec=SPEC,
    annotations=st.dictionaries(TEXT, TEXT, max_size=2),
)
def test_every_plan_concludes(kind: str, name: str, spec: dict[str, Any], annotations: dict[str, str]) -> None:
    raw = {
        "apiVersion": "substratus.ai/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns", "uid": "u-1", "generation": 1, "annotations": annotations},
        "spec": spec,
    }
    seen: Observation = KINDS[kind](obj=raw)
    plan = plan_for(seen, ctx=CTX, now=NOW, rng=Random(0))
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] in set(Reason)
    assert ready["status"] in ("True", "False")
    if ready["reason"] in (Reason.INVALID_SPEC, Reason.UNSUPPORTED_GPU):
        assert plan.apply == [] or all(body["kind"] in ("Job", "ServiceAccount") for _, body in plan.apply)
        assert plan.create == []
    for _, body in plan.children():  # what the API server would refuse, written anyway, is a retry loop
        child = body["metadata"]["name"]
        assert (DNS_1035 if body["kind"] == "Service" else DNS_SUBDOMAIN).fullmatch(child), (body["kind"], child)
        for container in _containers(body):
            for var in container.get("env") or ():
                assert var["name"] not in (".", ".."), var
                assert not var["name"].startswith(".."), var


def _containers(body: dict[str, Any]) -> list[dict[str, Any]]:
    spec = body.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or spec
    return [*(pod.get("initContainers") or ()), *(pod.get("containers") or ())]
