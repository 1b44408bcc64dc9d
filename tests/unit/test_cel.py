"""The CRDs' CEL rules (x-kubernetes-validations), evaluated by a CEL implementation (cel-python).

The v1.20 test API server ignores CEL, so these rules are checked here: each rule in the generated CRDs is
evaluated at its place in sample objects, and its verdict must equal the Python validators' verdict (the
controller's enforcement of the same rules on servers that ignore CEL).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import celpy
import pytest
from pydantic import ValidationError

from substratus_controller.api.v1 import KINDS
from substratus_controller.api.v1.crd import build_crds
from tests.samples import MD5, full_objects, minimal

_ENV = celpy.Environment()
BY_KIND = {cls.KIND.value: cls for cls in KINDS}


def _rules(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str, str]]:
    for rule in node.get("x-kubernetes-validations", []):
        yield path, rule["rule"], rule["message"]
    for name, prop in node.get("properties", {}).items():
        yield from _rules(prop, (*path, name))


RULES = {
    crd["spec"]["names"]["kind"]: list(_rules(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))
    for crd in build_crds()
}


def cel_failures(obj: dict[str, Any]) -> list[str]:
    """Messages of the CEL rules that `obj` breaks (rules on absent fields do not run, as in Kubernetes)."""
    failures = []
    for path, rule, message in RULES[obj["kind"]]:
        node: Any = obj
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        program = _ENV.program(_ENV.compile(rule))
        if not bool(program.evaluate({"self": celpy.json_to_cel(node)})):
            failures.append(message)
    return failures


def python_verdict(obj: dict[str, Any]) -> bool:
    try:
        BY_KIND[obj["kind"]].from_api(obj)
    except ValidationError:
        return False
    return True


def test_every_kind_carries_the_cross_field_rules() -> None:
    for kind, rules in RULES.items():
        places = {".".join(path) for path, _, _ in rules}
        assert {"spec.build", "spec.build.git", "spec.env", "spec.params"} <= places, kind
    for _, rule, _ in RULES["Model"]:
        _ENV.compile(rule)  # every rule is valid CEL


VALID_SPECS = [
    {"build": {"git": {"url": "https://x/y"}}},
    {"build": {"git": {"url": "https://x/y", "tag": "v1"}}},
    {"build": {"git": {"url": "https://x/y", "branch": "main"}}},
    {"build": {"upload": {"md5Checksum": MD5, "requestID": "r"}}},
    {"env": {"A": "1", "_b.c-d": "2"}},
    {"params": {"a": 1, "long-key.with/odd chars": "x"}},
]
INVALID_SPECS = [
    (
        {"build": {"git": {"url": "u"}, "upload": {"md5Checksum": MD5, "requestID": "r"}}},
        "exactly one of git",
    ),
    ({"build": {}}, "exactly one of git"),
    ({"build": {"git": {"url": "u", "tag": "t", "branch": "b"}}}, "either tag or branch"),
    ({"env": {"1BAD": "x"}}, "environment variable names"),
    ({"env": {"HAS SPACE": "x"}}, "environment variable names"),
    ({"env": {"A" * 254: "x"}}, "environment variable names"),
    ({"params": {"": 1}}, "param names"),
    ({"params": {"k" * 254: 1}}, "param names"),
]


@pytest.mark.parametrize("kind", sorted(BY_KIND))
@pytest.mark.parametrize("spec", VALID_SPECS)
def test_valid_objects_pass_cel_and_python(kind: str, spec: dict[str, Any]) -> None:
    obj = minimal(kind, **spec)
    assert cel_failures(obj) == []
    assert python_verdict(obj) is True


@pytest.mark.parametrize("kind", sorted(BY_KIND))
@pytest.mark.parametrize(("spec", "message"), INVALID_SPECS)
def test_invalid_objects_fail_cel_and_python(kind: str, spec: dict[str, Any], message: str) -> None:
    obj = minimal(kind, **spec)
    failures = cel_failures(obj)
    assert any(message in f for f in failures), failures
    assert python_verdict(obj) is False


@pytest.mark.parametrize("obj", full_objects(), ids=lambda o: o["metadata"]["name"])
def test_full_objects_pass_cel(obj: dict[str, Any]) -> None:
    assert cel_failures(obj) == []
