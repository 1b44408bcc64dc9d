"""Pure renderers of the desired children (Jobs, Pods, Deployments, Services, ConfigMaps, SAs, PVCs).

No I/O: no runtime, no os, no Kubernetes client. Input: typed objects and configuration; output: plain dicts.

Modules: names (child names), labels (labels, selectors, ownerReferences), security (pod/container security
contexts), params (params.json, PARAM_* env, params ConfigMap), env (spec.env and secret references),
resources (requests and GPU placement), serviceaccount, build (target image, build Job), builders (the Kaniko
and buildah containers of the build Job), workloads (loader and modeller Jobs), notebook (Pod, token Secret,
PVC), server (Deployment, Service), errors, context.
Every body is ready for server-side apply: apiVersion, kind, name and namespace set; no None, "", [] or {}
(bar `emptyDir: {}`); env sorted by name; so rendering an unchanged object twice gives equal bodies.
"""

from .build import build_job, target_image
from .context import RenderContext
from .errors import InvalidSpecError, UnsupportedGPUError
from .notebook import notebook_network_policy, notebook_pod, notebook_pvc, notebook_token_secret, pod_token_secret
from .params import params_configmap
from .server import server_deployment, server_service
from .serviceaccount import service_account
from .workloads import loader_job, modeller_job

__all__ = [
    "InvalidSpecError",
    "RenderContext",
    "UnsupportedGPUError",
    "build_job",
    "loader_job",
    "modeller_job",
    "notebook_network_policy",
    "notebook_pod",
    "notebook_pvc",
    "notebook_token_secret",
    "params_configmap",
    "pod_token_secret",
    "server_deployment",
    "server_service",
    "service_account",
    "target_image",
]
