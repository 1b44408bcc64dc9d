"""Shared substratus.ai/v1 types: builds, uploads, resources, GPUs, references, conditions, statuses.

Field names, JSON names and descriptions follow the seed API reference. Limits and cross-field rules follow
docs/decisions.md §1; each cross-field rule exists twice, as CEL for the CRD and as a Python validator, kept in
step by tests (see base.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from substratus_controller.constants import ConditionStatus

from .base import (
    DNS_LABEL_PATTERN,
    ENV_NAME_PATTERN,
    MAX_CONDITION_TYPE,
    MAX_ENV,
    MAX_IMAGE,
    MAX_MAP_KEY,
    MAX_MESSAGE,
    MAX_PARAMS,
    MAX_REASON,
    MAX_URL,
    MD5_PATTERN,
    ApiModel,
    CELRule,
    EnvValue,
    ParamValue,
    ShortText,
)

_ENV_NAME = re.compile(ENV_NAME_PATTERN)


def _check_env_keys(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if len(key) > MAX_MAP_KEY or not _ENV_NAME.match(key):
            raise ValueError(
                f"invalid environment variable name {key!r}: must match {ENV_NAME_PATTERN} "
                f"and be at most {MAX_MAP_KEY} characters"
            )
    return env


def _check_param_keys(params: dict[str, Any]) -> dict[str, Any]:
    for key in params:
        if not key or len(key) > MAX_MAP_KEY:
            raise ValueError(f"invalid param name {key!r}: must be 1 to {MAX_MAP_KEY} characters")
    return params


ENV_KEYS_RULE = CELRule(
    rule=f"self.all(k, size(k) <= {MAX_MAP_KEY} && k.matches('{ENV_NAME_PATTERN}'))",
    message=f"environment variable names must match {ENV_NAME_PATTERN} and be at most {MAX_MAP_KEY} characters",
)
PARAM_KEYS_RULE = CELRule(
    rule=f"self.all(k, size(k) >= 1 && size(k) <= {MAX_MAP_KEY})",
    message=f"param names must be 1 to {MAX_MAP_KEY} characters",
)

Env = Annotated[
    dict[str, EnvValue],
    Field(max_length=MAX_ENV, json_schema_extra={"x-kubernetes-validations": [ENV_KEYS_RULE.to_schema()]}),
    AfterValidator(_check_env_keys),
]
Params = Annotated[
    dict[str, ParamValue],
    Field(max_length=MAX_PARAMS, json_schema_extra={"x-kubernetes-validations": [PARAM_KEYS_RULE.to_schema()]}),
    AfterValidator(_check_param_keys),
]
Image = Annotated[str, StringConstraints(min_length=1, max_length=MAX_IMAGE)]
ObjectName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]


class GPUType(StrEnum):
    """GPUType is the type of GPU requested. Which types a cluster can place depends on its cloud."""

    NVIDIA_T4 = "nvidia-t4"
    NVIDIA_L4 = "nvidia-l4"
    NVIDIA_A10G = "nvidia-a10g"
    NVIDIA_V100 = "nvidia-v100"
    NVIDIA_A100 = "nvidia-a100"
    NVIDIA_A100_80GB = "nvidia-a100-80gb"
    NVIDIA_H100 = "nvidia-h100"


class GPUResources(ApiModel):
    type: GPUType | None = Field(
        default=None,
        description="Type of GPU. May be omitted on clouds that place any GPU (the local driver).",
    )
    count: Annotated[int, Field(ge=0)] = Field(default=0, description="Count is the number of GPUs.")


class Resources(ApiModel):
    cpu: Annotated[int, Field(ge=0)] = Field(default=2, description="CPU resources.")
    disk: Annotated[int, Field(ge=0)] = Field(default=10, description="Disk size in Gigabytes.")
    memory: Annotated[int, Field(ge=0)] = Field(default=10, description="Memory is the amount of RAM in Gigabytes.")
    gpu: GPUResources | None = Field(default=None, description="GPU resources.")


class ObjectRef(ApiModel):
    name: ObjectName = Field(description="Name of Kubernetes object.")


class BuildGit(ApiModel):
    SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {
        "x-kubernetes-map-type": "atomic",
        "not": {"required": ["tag", "branch"]},
    }
    CEL_RULES: ClassVar[tuple[CELRule, ...]] = (
        CELRule(rule="!(has(self.tag) && has(self.branch))", message="choose either tag or branch, not both"),
    )

    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL)] = Field(
        description="URL to the git repository to build. Example: https://github.com/my-username/my-repo"
    )
    path: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="Path within the git repository referenced by url."
    )
    tag: Annotated[ShortText, StringConstraints(min_length=1)] | None = Field(
        default=None,
        description=(
            "Tag is the git tag to use. Choose either tag or branch. This tag will be pulled only at build "
            "time and not monitored for changes."
        ),
    )
    branch: Annotated[ShortText, StringConstraints(min_length=1)] | None = Field(
        default=None,
        description=(
            "Branch is the git branch to use. Choose either branch or tag. This branch will be pulled only at "
            "build time and not monitored for changes."
        ),
    )

    @model_validator(mode="after")
    def _tag_xor_branch(self) -> BuildGit:
        if self.tag is not None and self.branch is not None:
            raise ValueError(self.CEL_RULES[0].message)
        return self


class BuildUpload(ApiModel):
    SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {"x-kubernetes-map-type": "atomic"}

    md5_checksum: Annotated[str, StringConstraints(min_length=32, max_length=32, pattern=MD5_PATTERN)] = Field(
        alias="md5Checksum",
        description=("MD5Checksum is the md5 checksum of the tar'd repo root requested to be uploaded and built."),
    )
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        alias="requestID",
        description=(
            "RequestID is the ID of the request to build the image. Changing this ID to a new value can be "
            "used to get a new signed URL (useful when a URL has expired)."
        ),
    )


class Build(ApiModel):
    SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {
        "x-kubernetes-map-type": "atomic",
        "oneOf": [{"required": ["git"]}, {"required": ["upload"]}],
    }
    CEL_RULES: ClassVar[tuple[CELRule, ...]] = (
        CELRule(rule="has(self.git) != has(self.upload)", message="exactly one of git or upload must be set"),
    )

    git: BuildGit | None = Field(
        default=None,
        description=(
            "Git is a reference to a git repository that will be built within the cluster. Built image will "
            "be set in the .spec.image field."
        ),
    )
    upload: BuildUpload | None = Field(
        default=None,
        description=(
            "Upload can be set to request to start an upload flow where the client is responsible for "
            "uploading a local directory that is to be built in the cluster."
        ),
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Build:
        if (self.git is None) == (self.upload is None):
            raise ValueError(self.CEL_RULES[0].message)
        return self


class UploadStatus(ApiModel):
    signed_url: Annotated[str, StringConstraints(max_length=8192)] | None = Field(
        default=None,
        alias="signedURL",
        description=(
            "SignedURL is a short lived HTTPS URL. The client is expected to send a PUT request to this URL "
            'containing a tar\'d docker build context. Content-Type of "application/octet-stream" should '
            "be used."
        ),
    )
    request_id: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None,
        alias="requestID",
        description=(
            "RequestID is the request id that corresponds to this status. Clients should check that this "
            "matches the request id that they set in the upload spec before uploading."
        ),
    )
    expiration: datetime | None = Field(
        default=None, description="Expiration is the time at which the signed URL expires."
    )
    stored_md5_checksum: Annotated[str, StringConstraints(max_length=32, pattern=MD5_PATTERN)] | None = Field(
        default=None,
        alias="storedMD5Checksum",
        description=("StoredMD5Checksum is the md5 checksum of the file that the controller observed in storage."),
    )


class ArtifactsStatus(ApiModel):
    url: Annotated[str, StringConstraints(max_length=MAX_URL)] | None = Field(
        default=None,
        description="URL of the bucket location holding this object's artifacts (e.g. gs://bucket/<hash>).",
    )


class Condition(ApiModel):
    """A metav1.Condition. `message` is optional here: API servers before 1.22 turn an applied "" into null."""

    type: Annotated[
        str,
        StringConstraints(
            max_length=MAX_CONDITION_TYPE,
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        ),
    ] = Field(description="Type of condition in CamelCase, e.g. Ready, Built, Complete, Serving.")
    status: ConditionStatus = Field(description="Status of the condition, one of True, False, Unknown.")
    observed_generation: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="The .metadata.generation that the condition was set based upon.",
    )
    last_transition_time: datetime = Field(
        description="Last time the condition transitioned from one status to another."
    )
    reason: Annotated[
        str,
        StringConstraints(min_length=1, max_length=MAX_REASON, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
    ] = Field(description="Programmatic identifier (CamelCase) of the reason for the last transition.")
    message: Annotated[str, StringConstraints(max_length=MAX_MESSAGE)] | None = Field(
        default=None, description="Human readable message with details about the transition."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
ObservedGeneration = Annotated[int, Field(ge=0)]
