"""Base class and schema helpers shared by every substratus.ai/v1 type.

Invariants:
- JSON names are camelCase (an alias generator), except where the seed API spells an acronym
  (`requestID`, `signedURL`, ...), which fields alias explicitly.
- Unknown fields are rejected (`extra="forbid"`): the CRD schemas are generated from these classes, so the
  API server never hands back a field they lack, and a typo in a user's manifest gets an error naming it.
- Cross-field rules are declared once per class as `CEL_RULES`: they become `x-kubernetes-validations` in
  the CRD (enforced by API servers >= 1.25) and the class enforces the same rule in Python with a
  `model_validator`, because older API servers ignore CEL. Tests evaluate the CEL text with a CEL
  implementation against the same objects, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True, slots=True)
class CELRule:
    """One `x-kubernetes-validations` entry: a CEL expression over `self` and the message shown on failure."""

    rule: str
    message: str
    field_path: str | None = None

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


class ApiModel(BaseModel):
    """Base of every API type: camelCase aliases, population by name, unknown fields forbidden."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_default=False,
    )

    # Cross-field rules exported to the CRD as x-kubernetes-validations (see module docstring).
    CEL_RULES: ClassVar[tuple[CELRule, ...]] = ()
    # Extra schema keys for the type's own schema (e.g. x-kubernetes-map-type, oneOf).
    SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema.update(cls.SCHEMA_EXTRA)
        if cls.CEL_RULES:
            schema["x-kubernetes-validations"] = [r.to_schema() for r in cls.CEL_RULES]
        return schema

    def to_api(self) -> dict[str, Any]:
        """The JSON form: aliases, and only the fields that were set (never nulls), so it round-trips."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)


# Length limits (docs/decisions.md §1: every string has maxLength, every list maxItems, every map maxProperties).
MAX_URL = 2048
MAX_IMAGE = 1024
MAX_ARG = 8192
MAX_ARGS = 128
MAX_ENV = 256
MAX_ENV_VALUE = 8192
MAX_PARAMS = 256
MAX_PARAM_VALUE = 8192
MAX_MAP_KEY = 253
MAX_CONDITIONS = 16
MAX_MESSAGE = 32768
MAX_REASON = 1024
MAX_CONDITION_TYPE = 316

# A DNS-1123 label: what Substratus object names (and references to them) must be, because names become
# label values and parts of child names (Jobs, Pods, Services).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
MD5_PATTERN = r"^[a-fA-F0-9]{32}$"

ShortText = Annotated[str, StringConstraints(max_length=255)]
Arg = Annotated[str, StringConstraints(max_length=MAX_ARG)]
Command = Annotated[list[Arg], Field(max_length=MAX_ARGS)]
EnvValue = Annotated[str, StringConstraints(max_length=MAX_ENV_VALUE)]
ParamValue = int | Annotated[str, StringConstraints(max_length=MAX_PARAM_VALUE)]
