"""The four substratus.ai/v1 kinds: Dataset, Model, Notebook, Server (spec, status and the object).

Each kind class carries what its CRD needs besides the schema (`KIND`, `PLURAL`, `SHORT_NAMES`, the
description) so that crd.py can render the CRD from the class alone. Spec field order and descriptions
follow the seed API reference.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from substratus_controller.constants import API_VERSION, Kind

from .base import ApiModel, Command
from .types import (
    ArtifactsStatus,
    Build,
    Conditions,
    Env,
    Image,
    ObjectRef,
    ObservedGeneration,
    Params,
    Resources,
    UploadStatus,
)


class ObjectMeta(ApiModel):
    """The parts of metav1.ObjectMeta the operator reads; other fields are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None


_COMMAND = "Command to run in the container."
_ENV = "Environment variables in the container"
_BUILD = "Build specifies how to build an image."
_RESOURCES = "Resources are the compute resources required by the container."


def _ready(what: str) -> str:
    return f"Ready indicates that the {what}. See Conditions for more details."


def _conditions(kind: str) -> str:
    return f"Conditions is the list of conditions that describe the current state of the {kind}."


_OBSERVED = "ObservedGeneration is the .metadata.generation that this status was computed from."
_ARTIFACTS = "Artifacts status."
_UPLOAD = "BuildUpload contains the status of the build context upload."


class DatasetSpec(ApiModel):
    """DatasetSpec defines the desired state of Dataset."""

    command: Command | None = Field(default=None, description=_COMMAND)
    env: Env | None = Field(default=None, description=_ENV)
    image: Image | None = Field(default=None, description="Image that contains dataset loading code and dependencies.")
    build: Build | None = Field(default=None, description=_BUILD)
    resources: Resources | None = Field(default=None, description=_RESOURCES)
    params: Params | None = Field(
        default=None, description="Params will be passed into the loading process as environment variables."
    )


class DatasetStatus(ApiModel):
    """DatasetStatus defines the observed state of Dataset."""

    ready: bool = Field(default=False, description=_ready("Dataset is ready to use"))
    observed_generation: ObservedGeneration | None = Field(default=None, description=_OBSERVED)
    conditions: Conditions | None = Field(default=None, description=_conditions("Dataset"))
    artifacts: ArtifactsStatus | None = Field(default=None, description=_ARTIFACTS)
    build_upload: UploadStatus | None = Field(default=None, alias="buildUpload", description=_UPLOAD)


class ModelSpec(ApiModel):
    """ModelSpec defines the desired state of Model"""

    command: Command | None = Field(default=None, description=_COMMAND)
    env: Env | None = Field(default=None, description=_ENV)
    image: Image | None = Field(default=None, description="Image that contains model code and dependencies.")
    build: Build | None = Field(default=None, description=_BUILD)
    resources: Resources | None = Field(default=None, description=_RESOURCES)
    model: ObjectRef | None = Field(
        default=None,
        description="Model should be set in order to mount another model to be used for transfer learning.",
    )
    dataset: ObjectRef | None = Field(default=None, description="Dataset to mount for training.")
    params: Params | None = Field(
        default=None,
        description=(
            "Parameters are passing into the model training/loading container as environment variables. "
            'Environment variable name will be "PARAM_" + uppercase(key).'
        ),
    )


class ModelStatus(ApiModel):
    """ModelStatus defines the observed state of Model"""

    ready: bool = Field(default=False, description=_ready("Model is ready to use"))
    observed_generation: ObservedGeneration | None = Field(default=None, description=_OBSERVED)
    conditions: Conditions | None = Field(default=None, description=_conditions("Model"))
    artifacts: ArtifactsStatus | None = Field(default=None, description=_ARTIFACTS)
    build_upload: UploadStatus | None = Field(default=None, alias="buildUpload", description=_UPLOAD)


class NotebookSpec(ApiModel):
    """NotebookSpec defines the desired state of Notebook"""

    command: Command | None = Field(default=None, description=_COMMAND)
    env: Env | None = Field(default=None, description=_ENV)
    suspend: bool | None = Field(
        default=None,
        description=(
            "Suspend should be set to true to stop the notebook (Pod) from running. This is a pointer to "
            "distinguish between explicit false and not specified."
        ),
    )
    image: Image | None = Field(default=None, description="Image that contains notebook and dependencies.")
    build: Build | None = Field(default=None, description=_BUILD)
    resources: Resources | None = Field(default=None, description=_RESOURCES)
    model: ObjectRef | None = Field(default=None, description="Model to load into the notebook container.")
    dataset: ObjectRef | None = Field(default=None, description="Dataset to load into the notebook container.")
    params: Params | None = Field(
        default=None,
        description="Params will be passed into the notebook container as environment variables.",
    )


class NotebookStatus(ApiModel):
    """NotebookStatus defines the observed state of Notebook"""

    ready: bool = Field(default=False, description=_ready("Notebook is ready to serve"))
    observed_generation: ObservedGeneration | None = Field(default=None, description=_OBSERVED)
    conditions: Conditions | None = Field(default=None, description=_conditions("Notebook"))
    artifacts: ArtifactsStatus | None = Field(default=None, description=_ARTIFACTS)
    build_upload: UploadStatus | None = Field(default=None, alias="buildUpload", description=_UPLOAD)


class ServerSpec(ApiModel):
    """ServerSpec defines the desired state of Server"""

    command: Command | None = Field(default=None, description=_COMMAND)
    env: Env | None = Field(default=None, description=_ENV)
    image: Image | None = Field(
        default=None, description="Image that contains model serving application and dependencies."
    )
    build: Build | None = Field(default=None, description=_BUILD)
    resources: Resources | None = Field(default=None, description=_RESOURCES)
    model: ObjectRef = Field(description="Model references the Model object to be served.")
    params: Params | None = Field(
        default=None, description="Params will be passed into the loading process as environment variables."
    )


class ServerStatus(ApiModel):
    """ServerStatus defines the observed state of Server"""

    ready: bool = Field(
        default=False,
        description="Ready indicates whether the Server is ready to serve traffic. See Conditions for more details.",
    )
    observed_generation: ObservedGeneration | None = Field(default=None, description=_OBSERVED)
    conditions: Conditions | None = Field(default=None, description=_conditions("Server"))
    build_upload: UploadStatus | None = Field(
        default=None,
        alias="buildUpload",
        description="Upload contains the status of the build context upload.",
    )


_METADATA = "Refer to Kubernetes API documentation for fields of metadata."


class _Object(ApiModel):
    """Fields and CRD facts common to the four kinds (each subclass sets the class variables)."""

    KIND: ClassVar[Kind]
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    DESCRIPTION: ClassVar[str]
    # Names are DNS-1123 labels: they become label values and parts of child names.
    NAME_PATTERN: ClassVar[str] = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    NAME_RULE: ClassVar[str] = "a DNS-1123 label (at most 63 characters)"

    api_version: Literal["substratus.ai/v1"] = Field(default="substratus.ai/v1", description=API_VERSION)
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description=_METADATA)

    @classmethod
    def from_api(cls, obj: dict[str, Any]) -> Any:
        """Parse an object as the API server returns it (raises pydantic.ValidationError when invalid)."""
        return cls.model_validate(obj)


class Dataset(_Object):
    KIND: ClassVar[Kind] = Kind.DATASET
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("data", "ds")
    DESCRIPTION: ClassVar[str] = (
        "The Dataset API is used to describe data that can be referenced for training Models.\n"
        "- Datasets pull in remote data sources using containerized data loaders.\n"
        "- Users can specify their own ETL logic by referencing a repository from a Dataset.\n"
        "- Users can leverage pre-built data loader integrations with various sources.\n"
        "- Training typically requires a large dataset. The Dataset API pulls a dataset once and stores it in "
        "a bucket, which is mounted directly into training Jobs.\n"
        "- The Dataset API allows users to query ready-to-use datasets (`kubectl get datasets`).\n"
        "- The Dataset API allows Kubernetes RBAC to be applied as a mechanism for controlling access to data."
    )

    kind: Literal["Dataset"] = Field(default="Dataset", description="Dataset")
    spec: DatasetSpec = Field(default_factory=DatasetSpec, description="Spec is the desired state of the Dataset.")
    status: DatasetStatus = Field(
        default_factory=DatasetStatus, description="Status is the observed state of the Dataset."
    )


class Model(_Object):
    KIND: ClassVar[Kind] = Kind.MODEL
    DESCRIPTION: ClassVar[str] = (
        "The Model API is used to build and train machine learning models.\n"
        "- Base models can be built from a Git repository.\n"
        "- Models can be trained by combining a base Model with a Dataset.\n"
        "- Model artifacts are persisted in cloud buckets."
    )

    kind: Literal["Model"] = Field(default="Model", description="Model")
    spec: ModelSpec = Field(default_factory=ModelSpec, description="Spec is the desired state of the Model.")
    status: ModelStatus = Field(default_factory=ModelStatus, description="Status is the observed state of the Model.")


class Notebook(_Object):
    KIND: ClassVar[Kind] = Kind.NOTEBOOK
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("nb",)
    DESCRIPTION: ClassVar[str] = (
        "The Notebook API can be used to quickly spin up a development environment backed by high "
        "performance compute.\n"
        "- Notebooks integrate with the Model and Dataset APIs allow for quick iteration.\n"
        "- Notebooks can be synced to local directories to streamline developer experiences using Substratus "
        "kubectl plugins."
    )

    kind: Literal["Notebook"] = Field(default="Notebook", description="Notebook")
    spec: NotebookSpec = Field(default_factory=NotebookSpec, description="Spec is the desired state of the Notebook.")
    status: NotebookStatus = Field(
        default_factory=NotebookStatus, description="Status is the observed state of the Notebook."
    )


class Server(_Object):
    KIND: ClassVar[Kind] = Kind.SERVER
    # A Server names a Service, whose names must start with a letter (DNS-1035).
    NAME_PATTERN: ClassVar[str] = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
    NAME_RULE: ClassVar[str] = "a DNS-1035 label (a letter first, at most 63 characters), because it names a Service"
    DESCRIPTION: ClassVar[str] = (
        "The Server API is used to deploy a server that exposes the capabilities of a Model via a HTTP interface."
    )

    kind: Literal["Server"] = Field(default="Server", description="Server")
    spec: ServerSpec = Field(description="Spec is the desired state of the Server.")
    status: ServerStatus = Field(
        default_factory=ServerStatus, description="Status is the observed state of the Server."
    )


KINDS: tuple[type[Dataset] | type[Model] | type[Notebook] | type[Server], ...] = (
    Dataset,
    Model,
    Notebook,
    Server,
)
AnyObject = Annotated[Dataset | Model | Notebook | Server, Field(discriminator="kind")]
