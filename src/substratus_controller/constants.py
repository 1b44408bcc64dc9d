"""Every name the operator shares with users, workloads and the cluster, in one place.

Group/version, kinds, label and annotation keys, field managers, ServiceAccount and container names, mount
paths, condition types and reasons. Other modules import these instead of spelling strings, so a rename
happens here once. Values are exact contract strings (see the spec documents); do not reformat them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

GROUP: Final = "substratus.ai"
VERSION: Final = "v1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "ai"


class Kind(StrEnum):
    """The four custom resource kinds."""

    DATASET = "Dataset"
    MODEL = "Model"
    NOTEBOOK = "Notebook"
    SERVER = "Server"

    @property
    def singular(self) -> str:
        """Lower-case kind, as used in resource names, labels and child names (`dataset`)."""
        return self.value.lower()

    @property
    def plural(self) -> str:
        return f"{self.singular}s"


# Labels put on every child (one helper renders them; see render/labels.py).
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "substratus"
LABEL_ROLE: Final = "role"
ROLE_BUILD: Final = "build"
ROLE_RUN: Final = "run"


def kind_label(kind: Kind) -> str:
    """`substratus.ai/<kind>`: the label naming the parent object on each child."""
    return f"{GROUP}/{kind.singular}"


# Labels identifying what a Job was created for.
LABEL_BUILD: Final = f"{GROUP}/build"  # the build id (digest of build spec + target image)
LABEL_RUN: Final = f"{GROUP}/run"  # the run id (digest of the workload-affecting spec)
LABEL_RERUN: Final = f"{GROUP}/rerun"  # "true" on a Job started because the spec changed
LABEL_RETRY: Final = f"{GROUP}/retry"  # digest of the retry annotation the Job was created under
ANNOTATION_IMAGE: Final = "image"  # on build Jobs: the image they produce (upstream's key)

# Annotations.
ANNOTATION_RETRY: Final = f"{GROUP}/retry"
ANNOTATION_NOTEBOOK_STORAGE: Final = f"{GROUP}/notebook-storage"
ANNOTATION_DEFAULT_CONTAINER: Final = "kubectl.kubernetes.io/default-container"
ANNOTATION_APPLIED: Final = f"{GROUP}/applied"  # on every applied child: the digest of its desired body
ANNOTATION_TOKEN_SECRET: Final = f"{GROUP}/token-secret"  # on notebook Pods: the Secret their token is in

# Field managers (server-side apply).
FIELD_MANAGER: Final = "substratus-controller"
FIELD_MANAGER_KUBECTL: Final = "kubectl"


class ConditionType(StrEnum):
    """Condition types written into `status.conditions`."""

    READY = "Ready"
    UPLOADED = "Uploaded"
    BUILT = "Built"
    COMPLETE = "Complete"
    SERVING = "Serving"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """Condition reasons: CamelCase, each equal to its name."""

    MODEL_NOT_FOUND = "ModelNotFound"
    MODEL_NOT_READY = "ModelNotReady"
    BASE_MODEL_NOT_FOUND = "BaseModelNotFound"
    BASE_MODEL_NOT_READY = "BaseModelNotReady"
    DATASET_NOT_FOUND = "DatasetNotFound"
    DATASET_NOT_READY = "DatasetNotReady"
    JOB_NOT_COMPLETE = "JobNotComplete"
    JOB_COMPLETE = "JobComplete"
    JOB_FAILED = "JobFailed"
    DEPLOYMENT_READY = "DeploymentReady"
    DEPLOYMENT_NOT_READY = "DeploymentNotReady"
    POD_READY = "PodReady"
    POD_NOT_READY = "PodNotReady"
    SUSPENDED = "Suspended"
    AWAITING_UPLOAD = "AwaitingUpload"
    UPLOAD_FOUND = "UploadFound"
    BUILD_FAILED = "BuildFailed"
    INVALID_SPEC = "InvalidSpec"
    UNSUPPORTED_GPU = "UnsupportedGPU"
    SPEC_CHANGED = "SpecChanged"
    # what the pods of a run, a Notebook or a Server report (status/pods.py)
    CONTAINER_FAILED = "ContainerFailed"
    OOM_KILLED = "OOMKilled"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    UNSCHEDULABLE = "Unschedulable"
    CONTAINER_CONFIG_ERROR = "ContainerConfigError"
    # builds without a usable image registry (cloud/registry_hosting.py)
    REGISTRY_NOT_CONFIGURED = "RegistryNotConfigured"
    # the namespace has no usable cloud identity (cloud/base.py workload_principal)
    IDENTITY_NOT_CONFIGURED = "IdentityNotConfigured"
    # a child's name is taken by an object this controller did not create (plan/ownership.py)
    CHILD_CONFLICT = "ChildConflict"


# Events are warnings when a condition turns False for one of these reasons.
WARNING_REASONS: Final = frozenset(
    {
        Reason.BUILD_FAILED,
        Reason.JOB_FAILED,
        Reason.INVALID_SPEC,
        Reason.UNSUPPORTED_GPU,
        Reason.MODEL_NOT_FOUND,
        Reason.BASE_MODEL_NOT_FOUND,
        Reason.DATASET_NOT_FOUND,
        Reason.CONTAINER_FAILED,
        Reason.OOM_KILLED,
        Reason.IMAGE_PULL_FAILED,
        Reason.CRASH_LOOP_BACK_OFF,
        Reason.UNSCHEDULABLE,
        Reason.CONTAINER_CONFIG_ERROR,
        Reason.REGISTRY_NOT_CONFIGURED,
        Reason.IDENTITY_NOT_CONFIGURED,
        Reason.CHILD_CONFLICT,
    }
)


# KEP-1755: where a local cluster says its registry is (cloud/registry_hosting.py).
LOCAL_REGISTRY_HOSTING_NAME: Final = "local-registry-hosting"
LOCAL_REGISTRY_HOSTING_KEY: Final = "localRegistryHosting.v1"

# Fixed, per-namespace ServiceAccounts. Prefixed (upstream: container-builder, data-loader, ...), so that
# a namespace's own ServiceAccount of a common name (`notebook`) is never taken over: the controller writes
# only SAs labelled as its own (plan/ownership.py).
SA_BUILDER: Final = "substratus-container-builder"
SA_DATA_LOADER: Final = "substratus-data-loader"
SA_MODELLER: Final = "substratus-modeller"
SA_NOTEBOOK: Final = "substratus-notebook"
SA_MODEL_SERVER: Final = "substratus-model-server"
# every workload ServiceAccount the controller creates in a namespace (bound to the namespace's principal)
WORKLOAD_SERVICE_ACCOUNTS: Final = frozenset({SA_BUILDER, SA_DATA_LOADER, SA_MODELLER, SA_NOTEBOOK, SA_MODEL_SERVER})

# Container names.
CONTAINER_BUILDER: Final = "builder"
CONTAINER_LOAD: Final = "load"
CONTAINER_MODEL: Final = "model"
CONTAINER_NOTEBOOK: Final = "notebook"
CONTAINER_SERVE: Final = "serve"

# Image builders (render/builders.py; chosen with --builder/BUILDER) and the build pod's other containers.
BUILDER_KANIKO: Final = "kaniko"
BUILDER_BUILDAH: Final = "buildah"
BUILDERS: Final = (BUILDER_KANIKO, BUILDER_BUILDAH)

# --notebook-network-policy: none, or a NetworkPolicy per notebook Pod admitting no ingress from any pod
NETWORK_POLICY_NONE: Final = "none"
NETWORK_POLICY_DENY_INGRESS: Final = "deny-ingress"
NETWORK_POLICIES: Final = (NETWORK_POLICY_NONE, NETWORK_POLICY_DENY_INGRESS)
CONTAINER_GIT_CLONE: Final = "git-clone"
CONTAINER_FETCH_CONTEXT: Final = "fetch-context"  # downloads an uploaded tarball for buildah (gcp, aws)

# The container contract: mount paths.
CONTENT_DIR: Final = "/content"
PARAMS_PATH: Final = "/content/params.json"
ARTIFACTS_PATH: Final = "/content/artifacts"
DATA_PATH: Final = "/content/data"
MODEL_PATH: Final = "/content/model"
PARAM_ENV_PREFIX: Final = "PARAM_"
# Writable directories every workload gets (emptyDirs), because images built as root (upstream's way) have
# no home for uid 1000 and a root-owned /content: HOME (with the caches under it) and /tmp.
HOME_DIR: Final = "/home/substratus"
TMP_DIR: Final = "/tmp"
NOTEBOOK_TOKEN_ENV: Final = "NOTEBOOK_TOKEN"
NOTEBOOK_PORT: Final = 8888
SERVER_PORT: Final = 8080

# Who workload pods run as (the "restricted" Pod Security Standard): a non-root user, and upstream's group
# 3003, which is every workload pod's fsGroup. Cloud drivers make read-write bucket mounts writable for them.
WORKLOAD_UID: Final = 1000
WORKLOAD_GID: Final = 3003

# Object names: parents are DNS labels so that they fit in label values; child names longer than a DNS
# label are shortened with a hash (render/names.py).
MAX_NAME_LENGTH: Final = 63

# A pod's GPUs come from one node, and the largest GPU machines of the three clouds have 16 (GCP
# a2-megagpu-16g; AWS and GKE's others have at most 8): a larger count would stay Pending forever.
MAX_GPU_COUNT: Final = 16
