"""Render the four CustomResourceDefinitions from the pydantic models (pure, deterministic).

The pydantic JSON schema of each kind is rewritten into a Kubernetes *structural* schema:
`$ref`s are inlined, `Optional` unions lose their `null` branch, `int | str` becomes
`x-kubernetes-int-or-string`, integers get `format: int64`, pydantic-only keys (`title`, `const`,
`additionalProperties: false`, null defaults) are dropped and `metadata` becomes a plain object with the
name rule. Keys are emitted in a fixed order so that the output is byte-for-byte stable.

Invariant: every property in the output has a `description` (checked by `undescribed_fields`), except
`metadata`, which Kubernetes describes and on which a CRD may not set one.
"""

from __future__ import annotations

from typing import Any

from substratus_controller.constants import CATEGORY, GROUP, VERSION
from substratus_controller.jsontypes import JSON

from .kinds import KINDS, Dataset, Model, Notebook, Server

_KEY_ORDER = (
    "description", "type", "format", "x-kubernetes-int-or-string", "enum", "default",
    "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "minProperties", "maxProperties", "items", "additionalProperties", "properties", "required",
    "anyOf", "oneOf", "not", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type", "x-kubernetes-validations",
)  # fmt: skip
_DROP = {"title", "const"}


def _name_schema(cls: type[Dataset | Model | Notebook | Server]) -> JSON:
    """Metadata is validated by the API server itself; a CRD may only restrict the name."""
    return {
        "description": (
            f"Name of the object: {cls.NAME_RULE}; it is used in label values and in the names of the "
            "object's children."
        ),
        "type": "string",
        "maxLength": 63,
        "pattern": cls.NAME_PATTERN,
    }


def _ordered(schema: JSON) -> JSON:
    known = {k: schema[k] for k in _KEY_ORDER if k in schema}
    rest = {k: schema[k] for k in sorted(schema) if k not in known}
    return {**known, **rest}


def _resolve(node: JSON, defs: JSON) -> JSON:
    """Inline `$ref` and collapse `X | None` unions; sibling keys (e.g. description) win over the target's."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_resolve(target, defs), **node}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) == 1:
            del node["anyOf"]
            inner = _resolve(branches[0], defs)
            node = {**inner, **{k: v for k, v in node.items() if k != "default" or v is not None}}
            if "description" in inner and "description" not in node:
                node["description"] = inner["description"]
        else:
            node["anyOf"] = [_resolve(b, defs) for b in branches]
    if node.get("default", 0) is None:
        del node["default"]
    return node


def _is_int_or_string(node: JSON) -> bool:
    types = sorted(str(b.get("type")) for b in node.get("anyOf", ()))
    return types == ["integer", "string"]


def structural(node: JSON, defs: JSON) -> JSON:
    """Convert one pydantic JSON-schema node (and everything under it) to a structural schema node."""
    node = _resolve(node, defs)
    out: JSON = {k: v for k, v in node.items() if k not in _DROP}
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    if _is_int_or_string(out):
        string_branch = next(b for b in out.pop("anyOf") if b.get("type") == "string")
        out["x-kubernetes-int-or-string"] = True
        if "maxLength" in string_branch:
            out["maxLength"] = string_branch["maxLength"]
    if out.get("type") == "integer":
        out.setdefault("format", "int64")
    if "enum" in out:
        out["type"] = "string"
    if "properties" in out:
        out["type"] = "object"
        out["properties"] = {name: structural(prop, defs) for name, prop in out["properties"].items()}
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(out["additionalProperties"], defs)
    if "items" in out:
        out["items"] = structural(out["items"], defs)
    return _ordered(out)


def _version_schema(cls: type[Dataset | Model | Notebook | Server]) -> JSON:
    raw = cls.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema = structural({k: v for k, v in raw.items() if k != "$defs"}, defs)
    schema["description"] = cls.DESCRIPTION
    props = schema["properties"]
    props["apiVersion"] = {
        "description": (
            "APIVersion defines the versioned schema of this representation of an object. Servers should "
            "convert recognized schemas to the latest internal value, and may reject unrecognized values."
        ),
        "type": "string",
    }
    props["kind"] = {
        "description": (
            "Kind is a string value representing the REST resource this object represents. Servers may infer "
            "this from the endpoint the client submits requests to. In CamelCase."
        ),
        "type": "string",
    }
    # The API server allows nothing on metadata but name/generateName restrictions (not even a description:
    # ObjectMeta is described by Kubernetes itself).
    props["metadata"] = {"type": "object", "properties": {"name": _name_schema(cls)}}
    schema["properties"] = {k: props[k] for k in ("apiVersion", "kind", "metadata", "spec", "status")}
    # The status is written by the controller; nothing there may be required of a fresh object.
    schema.pop("required", None)
    if "spec" in raw.get("required", []):
        schema["required"] = ["spec"]
    return _ordered(schema)


def build_crd(cls: type[Dataset | Model | Notebook | Server]) -> JSON:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1) for one kind."""
    kind = cls.KIND
    names: JSON = {
        "kind": kind.value,
        "listKind": f"{kind.value}List",
        "plural": kind.plural,
        "singular": kind.singular,
    }
    if cls.SHORT_NAMES:
        names["shortNames"] = list(cls.SHORT_NAMES)
    names["categories"] = [CATEGORY]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Ready", "type": "boolean", "jsonPath": ".status.ready"},
                        {
                            "name": "Reason",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": _version_schema(cls)},
                }
            ],
        },
    }


def build_crds() -> list[JSON]:
    """All four CRDs, in a fixed order (Dataset, Model, Notebook, Server)."""
    return [build_crd(cls) for cls in KINDS]


def undescribed_fields(schema: JSON, path: str = "") -> list[str]:
    """Paths of properties without a description (should always be empty)."""
    missing: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        here = f"{path}.{name}"
        if here == ".metadata":
            continue
        if not prop.get("description"):
            missing.append(here)
        missing += undescribed_fields(prop, here)
        for key in ("items", "additionalProperties"):
            if isinstance(prop.get(key), dict):
                missing += undescribed_fields(prop[key], f"{here}[*]")
    return missing


def strip_cel(obj: Any) -> Any:
    """A copy of a CRD without `x-kubernetes-validations`, for API servers older than 1.25 that reject it."""
    if isinstance(obj, dict):
        return {k: strip_cel(v) for k, v in obj.items() if k != "x-kubernetes-validations"}
    if isinstance(obj, list):
        return [strip_cel(v) for v in obj]
    return obj
