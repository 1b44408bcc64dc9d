"""The image build: the target image of an object and the Job that builds it (docs/upstream-behaviour.md §3.2, §3.4).

Invariants:
- Target image `<registry>/<cluster>-<kind>-<ns>.<name>:<tag>`: tag = git tag > git branch > `latest` for
  git builds, the lower-cased md5 for uploads; the driver makes the tag docker-safe. The target is stored
  as the Job annotation `image`, so a reconciler can tell a stale build Job from the current one.
- Job `<name>-<kind>-bld`: backoffLimit 1, restartPolicy Never, SA `container-builder`, labels
  `role: build` plus `substratus.ai/build: <build_id>` on the Job and its pods; the same shape for every
  builder. The container `builder` comes from the builder `ctx.builder` names (render/builders.py: Kaniko
  or buildah, with its image, and plain-HTTP registry flags when `ctx.insecure_registry`).
- Git builds clone into the `workspace` emptyDir (init container `git-clone`, `--branch` with the tag or
  branch when set, `terminationMessagePolicy: FallbackToLogsOnError`) and build /workspace or
  /workspace/<git.path>. A URL starting with `-`, an absolute path or a path with a `..` component is an
  InvalidSpecError (the clone must stay a clone of a repository into /workspace, and the context inside it).
- Upload builds read the tarball the way the builder asks the cloud driver (Kaniko: `build_context`, a
  context URL; buildah: `upload_tarball`, a file), mounting what the driver says.
- Init containers: `git-clone`, then the cloud's (`builder_init_containers`, e.g. waiting for Workload
  Identity), then those fetching the upload (which may need that identity); the fetchers also fall back
  to their logs for the termination message.
- The builder pod runs as root: the documented exception to the restricted Pod Security Standard
  (security.py explains why, per builder). It is never privileged.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from substratus_controller.cloud.base import CloudDriver
from substratus_controller.constants import (
    ANNOTATION_DEFAULT_CONTAINER,
    ANNOTATION_IMAGE,
    CONTAINER_BUILDER,
    CONTAINER_GIT_CLONE,
    LABEL_BUILD,
    ROLE_BUILD,
    SA_BUILDER,
    Kind,
)
from substratus_controller.jsontypes import JSON

from ._pod import TERMINATION_MESSAGE_POLICY
from .bodies import child_metadata, identity, volume_mount
from .builders import WORKSPACE_PATH, WORKSPACE_VOLUME, BuildInputs, builder_for
from .context import RenderContext
from .errors import InvalidSpecError
from .labels import Parent, check_label_value, labels
from .names import build_job_name
from .security import builder_pod_security_context

BUILD_BACKOFF_LIMIT = 1
GIT_PATH_FIELD = "spec.build.git.path"


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


def check_git_path(path: str | None) -> str | None:
    """`path` when it is a relative path inside the clone, None when empty; InvalidSpecError otherwise."""
    if not path:
        return None
    if path.startswith("/"):
        raise InvalidSpecError(GIT_PATH_FIELD, f"{path!r} is absolute: give a directory relative to the repository")
    if ".." in PurePosixPath(path).parts:
        raise InvalidSpecError(GIT_PATH_FIELD, f"{path!r} leaves the repository: a '..' component is not allowed")
    return path


def _falls_back_to_logs(container: JSON) -> JSON:
    return {**container, "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY}


def build_job(obj: Parent, kind: Kind, ctx: RenderContext, *, target: str, build_id: str) -> JSON:
    """The Job building `target` for `obj` with the builder `ctx.builder` (see module docstring)."""
    name, namespace = identity(obj, kind)
    build = obj.spec.build
    if build is None or (build.git is None and build.upload is None):
        raise InvalidSpecError("spec.build", "no build source: set exactly one of git or upload")
    if not target:
        raise ValueError("build_job needs a target image")
    check_label_value(LABEL_BUILD, build_id)
    builder = builder_for(ctx.builder)

    volumes: list[JSON] = [{"name": WORKSPACE_VOLUME, "emptyDir": {}}]
    mounts: list[JSON] = [{"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_PATH}]
    init_containers: list[JSON] = []
    fetch_containers: list[JSON] = []
    pod_annotations = {ANNOTATION_DEFAULT_CONTAINER: CONTAINER_BUILDER}
    git_path: str | None = None
    upload: str | None = None
    if build.upload is not None:
        stored = ctx.cloud.upload_url(kind, namespace, name, build.upload.md5_checksum.lower())
        source = builder.read_upload(ctx.cloud, stored)
        volumes += source.volume.volumes
        mounts += [volume_mount(m) for m in source.volume.mounts]
        pod_annotations.update(source.volume.annotations)
        fetch_containers = [_falls_back_to_logs(c) for c in source.init_containers]
        upload = source.location
    else:
        assert build.git is not None  # checked above
        if build.git.url.startswith("-"):
            # git would read it as an option (e.g. --upload-pack=<command>).
            raise InvalidSpecError("spec.build.git.url", f"{build.git.url!r} is not a repository URL")
        git_path = check_git_path(build.git.path)
        ref = build.git.tag or build.git.branch
        clone_args = ["clone", build.git.url, *(["--branch", ref] if ref else []), WORKSPACE_PATH]
        init_containers.append(
            {
                "name": CONTAINER_GIT_CLONE,
                "image": ctx.git_image,
                "args": clone_args,
                "volumeMounts": [{"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_PATH}],
                "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
            }
        )
    init_containers += ctx.cloud.builder_init_containers()
    init_containers += fetch_containers

    container = builder.container(
        BuildInputs(
            image=ctx.builder_image,
            target=target,
            insecure_registry=ctx.insecure_registry,
            volume_mounts=mounts,
            resources=ctx.cloud.builder_resources(),
            git_path=git_path,
            upload=upload,
        )
    )

    pod_spec: JSON = {
        "serviceAccountName": SA_BUILDER,
        "restartPolicy": "Never",
        "securityContext": builder_pod_security_context(),
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
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
