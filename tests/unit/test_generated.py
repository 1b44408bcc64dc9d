"""Generated artifacts: fresh, complete against the seed API reference, and described."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import yaml

from substratus_controller.api.v1.crd import build_crds, undescribed_fields
from tests.conftest import ROOT
from tests.samples import full_objects
from tests.seed import seed_types

_PRIMITIVES = {"string", "boolean", "integer"}


def _schemas() -> dict[str, dict[str, Any]]:
    return {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in build_crds()}


def test_committed_generated_files_are_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_generation_is_deterministic() -> None:
    assert build_crds() == build_crds()


def _check_type(seed_type: str, node: dict[str, Any], where: str, types: dict[str, Any]) -> list[str]:
    """Compare one seed type string with one schema node; return problems."""
    problems: list[str] = []

    def expect(cond: bool, what: str) -> None:
        if not cond:
            problems.append(f"{where}: seed says {seed_type!r}, schema has {what}")

    if seed_type in _PRIMITIVES:
        expect(node.get("type") == seed_type, repr(node.get("type")))
    elif seed_type == "Time":
        expect(node.get("type") == "string" and node.get("format") == "date-time", repr(node))
    elif seed_type == "ObjectMeta":
        expect(node.get("type") == "object", repr(node.get("type")))
    elif seed_type.endswith(" array"):
        expect(node.get("type") == "array", repr(node.get("type")))
        problems += _check_type(seed_type.removesuffix(" array"), node.get("items", {}), f"{where}[*]", types)
    elif seed_type.startswith("object (keys:string, values:"):
        value = seed_type.removeprefix("object (keys:string, values:").removesuffix(")")
        expect(node.get("type") == "object", repr(node.get("type")))
        inner = node.get("additionalProperties", {})
        if value == "IntOrString":
            expect(inner.get("x-kubernetes-int-or-string") is True, repr(inner))
        else:
            problems += _check_type(value, inner, f"{where}{{*}}", types)
    elif types.get(seed_type) == []:  # an enum-like named type (GPUType)
        expect(node.get("type") == "string" and bool(node.get("enum")), repr(node))
    else:
        expect(node.get("type") == "object" and "properties" in node, repr(node.get("type")))
    return problems


def test_every_seed_field_exists_with_its_json_name_and_type() -> None:
    types = seed_types()
    assert {"Dataset", "Model", "Notebook", "Server", "Build", "UploadStatus", "GPUType"} <= set(types)
    nodes: dict[str, dict[str, Any]] = dict(_schemas())
    problems: list[str] = []
    checked = 0
    # Walk from the kinds down, locating each named type's schema through the field that holds it.
    pending = list(nodes)
    while pending:
        type_name = pending.pop()
        node = nodes[type_name]
        for field, seed_type in types[type_name]:
            where = f"{type_name}.{field}"
            prop = node.get("properties", {}).get(field)
            if prop is None:
                problems.append(f"{where}: missing from the CRD schema")
                continue
            checked += 1
            problems += _check_type(seed_type, prop, where, types)
            named = seed_type.removesuffix(" array")
            if named in types and types[named] and named not in nodes:
                nodes[named] = prop.get("items", prop) if seed_type.endswith(" array") else prop
                pending.append(named)
    assert not problems, "\n".join(problems)
    unreached = {t for t, fields in types.items() if fields} - set(nodes)
    assert not unreached, f"seed types never reached from a kind: {unreached}"
    assert checked >= 80


def test_every_field_has_a_description() -> None:
    for kind, schema in _schemas().items():
        assert undescribed_fields(schema) == [], kind


def _paths(obj: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(f"{prefix}.{k}")
            out |= _paths(v, f"{prefix}.{k}")
    elif isinstance(obj, list):
        for v in obj:
            out |= _paths(v, prefix)
    return out


def test_samples_set_every_field_of_the_schema() -> None:
    """The integration test's 'fully populated' objects really populate every spec and status field."""
    schemas = _schemas()

    def schema_paths(node: dict[str, Any], prefix: str) -> set[str]:
        out: set[str] = set()
        for name, prop in node.get("properties", {}).items():
            if name == "metadata":
                continue
            out.add(f"{prefix}.{name}")
            inner = prop.get("items", prop)
            out |= schema_paths(inner, f"{prefix}.{name}")
        return out

    for kind, schema in schemas.items():
        covered: set[str] = set()
        for obj in full_objects():
            if obj["kind"] == kind:
                covered |= _paths({k: v for k, v in obj.items() if k != "metadata"})
        missing = {p for p in schema_paths(schema, "") if p not in covered}
        assert not missing, f"{kind}: samples never set {sorted(missing)}"


def test_cli_prints_the_crds() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "substratus_controller.cli", "crds"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert list(yaml.safe_load_all(out)) == build_crds()
    no_cel = subprocess.run(
        [sys.executable, "-m", "substratus_controller.cli", "crds", "--no-cel"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "x-kubernetes-validations" in out
    assert "x-kubernetes-validations" not in no_cel
    assert len(list(yaml.safe_load_all(no_cel))) == 4
