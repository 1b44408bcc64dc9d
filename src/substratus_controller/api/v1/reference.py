"""Render `api/reference.md` from the pydantic models (pure, deterministic).

Same shape as the seed API reference: one section per type in alphabetical order, each with the kinds it
appears in and a `Field | Description` table; enums list their values; validation rules from the schema
(limits, patterns, defaults, enums) are appended to each description so the document says what the API
server will accept.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from substratus_controller.constants import API_VERSION

from .crd import build_crds
from .kinds import KINDS, ObjectMeta

_SCALARS = {str: "string", int: "integer", bool: "boolean", datetime: "Time"}


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and `| None`."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _type_name(tp: Any) -> str:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        names = sorted(_type_name(a) for a in typing.get_args(tp))
        return "IntOrString" if names == ["integer", "string"] else " | ".join(names)
    if origin is list:
        return f"{_type_name(typing.get_args(tp)[0])} array"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"object (keys:{_type_name(key)}, values:{_type_name(value)})"
    if typing.get_origin(tp) is typing.Literal:
        return "string"
    if tp is ObjectMeta:
        return "ObjectMeta"
    if isinstance(tp, type) and issubclass(tp, BaseModel | Enum):
        return tp.__name__
    return _SCALARS.get(tp, getattr(tp, "__name__", str(tp)))


def _named_types(tp: Any) -> list[type]:
    """Model and enum classes referenced by an annotation (through lists, dicts and unions)."""
    tp = _unwrap(tp)
    found: list[type] = []
    if isinstance(tp, type) and issubclass(tp, BaseModel | Enum) and tp is not ObjectMeta:
        found.append(tp)
    for arg in typing.get_args(tp):
        found += _named_types(arg)
    return found


def _collect() -> dict[str, type]:
    seen: dict[str, type] = {}
    stack: list[type] = list(KINDS)
    while stack:
        cls = stack.pop()
        if cls.__name__ in seen:
            continue
        seen[cls.__name__] = cls
        if issubclass(cls, BaseModel):
            for f in cls.model_fields.values():
                stack += _named_types(f.annotation)
    return seen


def _schema_index() -> dict[str, dict[str, Any]]:
    """Structural schema of every field, keyed `Type.jsonName`, to read limits from."""
    index: dict[str, dict[str, Any]] = {}
    types_by_name = _collect()

    def visit(schema: dict[str, Any], cls: type) -> None:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return
        for name, f in cls.model_fields.items():
            key = f.alias or name
            sub = schema.get("properties", {}).get(key)
            if sub is None:
                continue
            index[f"{cls.__name__}.{key}"] = sub
            for t in _named_types(f.annotation):
                if t.__name__ in types_by_name:
                    inner = sub.get("items", sub)
                    inner = inner.get("additionalProperties", inner) if "properties" not in inner else inner
                    visit(inner, t)

    for cls, crd in zip(KINDS, build_crds(), strict=True):
        visit(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], cls)
    return index


def _rules(schema: dict[str, Any]) -> str:
    notes: list[str] = []
    for key, label in (
        ("default", "Default"),
        ("minimum", "Minimum"),
        ("minLength", "MinLength"),
        ("maxLength", "MaxLength"),
        ("pattern", "Pattern"),
        ("maxItems", "MaxItems"),
        ("maxProperties", "MaxProperties"),
    ):
        if key in schema:
            value = schema[key]
            notes.append(f"{label}: `{value}`" if key == "pattern" else f"{label}: {value}")
    if "enum" in schema:
        notes.append("Enum: " + ", ".join(f"`{v}`" for v in schema["enum"]))
    for rule in schema.get("x-kubernetes-validations", []):
        notes.append(f"Rule: {rule['message']}")
    return (" <br />" + ", ".join(notes)) if notes else ""


def _row(cls: type[BaseModel], name: str, f: FieldInfo, index: dict[str, dict[str, Any]]) -> str:
    key = f.alias or name
    description = (f.description or "").replace("\n", " ")
    required = " (required)" if f.is_required() else ""
    rules = _rules(index.get(f"{cls.__name__}.{key}", {}))
    return f"| `{key}` _{_type_name(f.annotation)}_ | {description}{required}{rules} |"


def render_reference() -> str:
    """The whole API reference as markdown."""
    by_name = _collect()
    appears: dict[str, set[str]] = {n: set() for n in by_name}
    for cls in by_name.values():
        if issubclass(cls, BaseModel):
            for f in cls.model_fields.values():
                for t in _named_types(f.annotation):
                    appears[t.__name__].add(cls.__name__)
    index = _schema_index()
    kinds = {cls.__name__ for cls in KINDS}
    out = [
        "# API Reference",
        "",
        "<!-- Generated by hack/generate.py from src/substratus_controller/api/v1; do not edit. -->",
        "",
        f"API Version: {API_VERSION}",
        "",
        "Package v1 contains API Schema definitions for Substratus.",
        "",
        "## Resources",
        "",
        *[f"- [{n}](#{n.lower()})" for n in sorted(kinds)],
        "",
        "## Types",
        "",
    ]
    for name in sorted(by_name):
        cls = by_name[name]
        out.append(f"### {name}")
        out.append("")
        doc = getattr(cls, "DESCRIPTION", None) or (cls.__doc__ or "").strip()
        if name in kinds or (doc and not doc.startswith(("Base of", "A metav1"))):
            out += [doc, ""] if doc else []
        if appears[name]:
            out += ["_Appears in:_", "", *[f"- [{a}](#{a.lower()})" for a in sorted(appears[name])], ""]
        if issubclass(cls, Enum):
            out += [
                "_Underlying type:_ string",
                "",
                "| Value | Description |",
                "|---|---|",
                *[f"| `{m.value}` | |" for m in cls],
                "",
            ]
            continue
        assert issubclass(cls, BaseModel)
        out += ["| Field | Description |", "|---|---|"]
        for field_name, f in cls.model_fields.items():
            out.append(_row(cls, field_name, f, index))
        out.append("")
    return "\n".join(out)
