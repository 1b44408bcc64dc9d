"""The image build: the target image of an object and the Kaniko Job that builds it (upstream §3.2, §3.4).

Invariants:
- Target image `<registry>/<cluster>-<kind>-<ns>-<name>:<tag>`: tag = git tag > git branch > `latest` for
  git builds, the lower-cased md5 for uploads; the driver makes the tag docker-safe. The target is stored
  as the Job annotation `image`, so a reconciler can tell a stale build Job from the current one.
- Job `<name>-<kind>-bld`: backoffLimit 1, restartPolicy Never, SA `container-builder`, labels
  `role: build` plus `substratus.ai/build: <build_id>` on the Job and its pods.
- Container `builder` (Kaniko) with args in upstream's order: `--context`, `--destination`, `--cache=true`,
  `--compressed-caching=false`, `--log-format=color`, `--log-timestamp=false`, then
  `--context-sub-path=<git.path>` for git builds with a path.
- Git builds clone into the `workspace` emptyDir (init container `git-clone`, `--branch` with the tag or
  branch when set) and build `dir:///workspace`; upload builds read the tarball the cloud driver says
  (`build_context`), mounting what it asks for. Cloud-specific init containers run after the clone.
- The builder pod runs as root: the documented exception to the restricted Pod Security Standard
  (security.py explains why). It is never privileged.
"""

from __future__ import annotations

from substratus_controller.cloud.base import CloudDriver
from substratus_controller.constants import (
    ANNOTATION_DEFAULT_CONTAINER,
    ANNOTATION_IMAGE,
    CONTAINER_BUILDER,
    LABEL_BUILD,
    ROLE_BUILD,
    SA_BUILDER,
    Kind,
)

from ._common import JSON, child_metadata, identity, put, volume_mount
from .context import RenderContext
from .errors import InvalidSpecError
from .labels import Parent, check_label_value, labels
from .names import build_job_name
from .security import builder_pod_security_context

WORKSPACE_VOLUME = "workspace"
WORKSPACE_PATH = "/workspace"
GIT_CLONE_CONTAINER = "git-clone"
BUILD_BACKOFF_LIMIT = 1


def target_image(obj: Parent, kind: Kind, cloud: CloudDriver) -> str:
    """The image the build of `obj` produces (see module docstring); InvalidSpecError without a build."""
    name, namespace = identity(obj, kind)
    build = obj.spec.build
    if build is None:
        raise InvalidSpecError("spec.build", "no build source: set exactly one of git or upload")
    if build.upload is not None:
        tag = build.upload.md5_checksum.lower()
    elif build.git is not None:
        tag = build.git.tag or build.git.branch or "latest"
    else:
        raise InvalidSpecError("spec.build", "no build source: set exactly one of git or upload")
    return cloud.image_url(kind, namespace, name, tag)


def build_job(obj: Parent, kind: Kind, ctx: RenderContext, *, target: str, build_id: str) -> JSON:
    """The Kaniko Job building `target` for `obj` (see module docstring)."""
    name, namespace = identity(obj, kind)
    build = obj.spec.build
    if build is None or (build.git is None and build.upload is None):
        raise InvalidSpecError("spec.build", "no build source: set exactly one of git or upload")
    if not target:
        raise ValueError("build_job needs a target image")
    check_label_value(LABEL_BUILD, build_id)

    volumes: list[JSON] = [{"name": WORKSPACE_VOLUME, "emptyDir": {}}]
    mounts: list[JSON] = [{"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_PATH}]
    init_containers: list[JSON] = []
    pod_annotations = {ANNOTATION_DEFAULT_CONTAINER: CONTAINER_BUILDER}
    sub_path: str | None = None
    if build.upload is not None:
        context, bucket = ctx.cloud.build_context(ctx.cloud.upload_url(kind, namespace, name))
        volumes += bucket.volumes
        mounts += [volume_mount(m) for m in bucket.mounts]
        pod_annotations.update(bucket.annotations)
    else:
        assert build.git is not None  # checked above
        if build.git.url.startswith("-"):
            # git would read it as an option (e.g. --upload-pack=<command>).
            raise InvalidSpecError("spec.build.git.url", f"{build.git.url!r} is not a repository URL")
        context = f"dir://{WORKSPACE_PATH}"
        ref = build.git.tag or build.git.branch
        clone_args = ["clone", build.git.url, *(["--branch", ref] if ref else []), WORKSPACE_PATH]
        init_containers.append(
            {
                "name": GIT_CLONE_CONTAINER,
                "image": ctx.git_image,
                "args": clone_args,
                "volumeMounts": [{"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_PATH}],
            }
        )
        sub_path = build.git.path or None
    init_containers += ctx.cloud.builder_init_containers()

    args = [
        f"--context={context}",
        f"--destination={target}",
        "--cache=true",
        "--compressed-caching=false",
        "--log-format=color",
        "--log-timestamp=false",
    ]
    if sub_path:
        args.append(f"--context-sub-path={sub_path}")
    container: JSON = {"name": CONTAINER_BUILDER, "image": ctx.kaniko_image, "args": args}
    put(container, "resources", ctx.cloud.builder_resources())
    container["volumeMounts"] = mounts

    pod_spec: JSON = {
        "serviceAccountName": SA_BUILDER,
        "restartPolicy": "Never",
        "securityContext": builder_pod_security_context(),
    }
    put(pod_spec, "initContainers", init_containers)
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes

    build_labels = {LABEL_BUILD: build_id}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(
            obj,
            kind,
            name=build_job_name(kind, name),
            role=ROLE_BUILD,
            extra_labels=build_labels,
            annotations={ANNOTATION_IMAGE: target},
        ),
        "spec": {
            "backoffLimit": BUILD_BACKOFF_LIMIT,
            "template": {
                "metadata": {
                    "labels": {**labels(kind, name, ROLE_BUILD), **build_labels},
                    "annotations": pod_annotations,
                },
                "spec": pod_spec,
            },
        },
    }
