"""The image builders of the build Job: Kaniko and buildah behind one small interface (render/build.py keeps
the Job's shape and asks the selected builder for its container).

Interface (`Builder`, selected by name with `builder_for`):
- `read_upload(cloud, upload)`: how this builder reads an uploaded tarball: the `location` its container is
  given, the volume it mounts for it and the init containers that fetch it first;
- `container(inputs)`: the container `builder`, building the clone in /workspace or the upload, and
  pushing `inputs.target`.

Invariants:
- Both builders' containers have `terminationMessagePolicy: FallbackToLogsOnError`, so the last log lines
  of a failed build become its termination message (the build condition quotes it).
- Kaniko: args in upstream's order: `--context` (`dir:///workspace`, or the driver's `build_context` for
  uploads), `--destination`, `--cache=true`, `--compressed-caching=false`, `--log-format=color`,
  `--log-timestamp=false`, then `--context-sub-path=<git.path>` for git builds with a path, then
  `--insecure --insecure-pull` when the registry speaks plain HTTP. No container securityContext.
- Buildah: `command: ["/bin/sh", "-c", BUILDAH_SCRIPT]`. The script is a constant: no spec value is ever
  part of it. Everything variable reaches it as environment variables (BUILD_CONTEXT, BUILD_DOCKERFILE,
  BUILD_TARGET, BUILD_REGISTRY, BUILD_TLS_VERIFY, and BUILD_TARBALL for uploads), each double-quoted
  where the script uses it; `$` in their values is written `$$`, so Kubernetes' `$(VAR)` expansion leaves
  them literal. Context: /workspace or /workspace/<git.path> (or the unpacked upload in /workspace),
  Dockerfile: <context>/Dockerfile. vfs storage and chroot isolation (flags, and STORAGE_DRIVER /
  BUILDAH_ISOLATION for anything reading the environment), TLS verification off only for a plain-HTTP
  registry. Its security context is render/security.py's `buildah_container_security_context`.
- Buildah's failures end with one line: `substratus: build failed` after buildah's own output (which names
  the failing Dockerfile step), `substratus: cannot push <target> to registry <host>`, or what is missing.
- Buildah keeps no layer cache between Jobs (each Job starts with empty storage); Kaniko's `--cache=true`
  (a cache repository in the registry) has no rendered buildah equivalent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from substratus_controller.cloud.base import BucketURL, BucketVolume, CloudDriver
from substratus_controller.constants import BUILDER_BUILDAH, BUILDER_KANIKO, CONTAINER_BUILDER
from substratus_controller.jsontypes import JSON

from ._pod import TERMINATION_MESSAGE_POLICY
from .bodies import put
from .security import buildah_container_security_context

WORKSPACE_VOLUME = "workspace"
WORKSPACE_PATH = "/workspace"
DOCKERFILE = "Dockerfile"
DEFAULT_REGISTRY_HOST = "docker.io"

BUILDAH_SCRIPT = f"""\
set -eu
if [ -n "${{BUILD_TARBALL:-}}" ]; then
  if ! tar -xzf "$BUILD_TARBALL" --no-same-owner -C {WORKSPACE_PATH}; then
    echo "substratus: cannot unpack the uploaded build context $BUILD_TARBALL" >&2
    exit 1
  fi
fi
if [ ! -f "$BUILD_DOCKERFILE" ]; then
  echo "substratus: build failed: no Dockerfile at $BUILD_DOCKERFILE" >&2
  exit 1
fi
if ! buildah bud --isolation chroot --storage-driver vfs --tls-verify="$BUILD_TLS_VERIFY" \\
    -f "$BUILD_DOCKERFILE" -t "$BUILD_TARGET" "$BUILD_CONTEXT"; then
  echo "substratus: build failed" >&2
  exit 1
fi
if ! buildah push --storage-driver vfs --tls-verify="$BUILD_TLS_VERIFY" "$BUILD_TARGET"; then
  echo "substratus: cannot push $BUILD_TARGET to registry $BUILD_REGISTRY" >&2
  exit 1
fi
"""


@dataclass(frozen=True, slots=True)
class UploadSource:
    """How a builder reads an uploaded tarball: what its container is told (`location`), what the pod
    mounts for it, and the init containers that fetch it before the build."""

    location: str
    volume: BucketVolume
    init_containers: list[JSON]


@dataclass(frozen=True, slots=True)
class BuildInputs:
    """Everything a builder container is made of (render/build.py has validated it)."""

    image: str
    target: str
    insecure_registry: bool
    volume_mounts: list[JSON]
    resources: JSON
    git_path: str | None = None  # git builds: the validated sub-directory of the clone, if any
    upload: str | None = None  # upload builds: the `location` of `read_upload`


class Builder(Protocol):
    name: str

    def read_upload(self, cloud: CloudDriver, upload: BucketURL) -> UploadSource: ...

    def container(self, inputs: BuildInputs) -> JSON: ...


def registry_host(image: str) -> str:
    """The registry host of an image reference (`localhost:5000/x:1` -> `localhost:5000`; `x:1` -> docker.io)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return DEFAULT_REGISTRY_HOST


def _literal(value: str) -> str:
    """An env value Kubernetes passes unchanged: `$` is written `$$` (no `$(VAR)` expansion)."""
    return value.replace("$", "$$")


class Kaniko:
    """gcr.io/kaniko-project/executor: upstream's builder (see module docstring)."""

    name = BUILDER_KANIKO

    def read_upload(self, cloud: CloudDriver, upload: BucketURL) -> UploadSource:
        context, volume = cloud.build_context(upload)
        return UploadSource(location=context, volume=volume, init_containers=[])

    def container(self, inputs: BuildInputs) -> JSON:
        args = [
            f"--context={inputs.upload or f'dir://{WORKSPACE_PATH}'}",
            f"--destination={inputs.target}",
            "--cache=true",
            "--compressed-caching=false",
            "--log-format=color",
            "--log-timestamp=false",
        ]
        if inputs.git_path:
            args.append(f"--context-sub-path={inputs.git_path}")
        if inputs.insecure_registry:
            args += ["--insecure", "--insecure-pull"]
        container: JSON = {"name": CONTAINER_BUILDER, "image": inputs.image, "args": args}
        put(container, "resources", inputs.resources)
        container["volumeMounts"] = inputs.volume_mounts
        container["terminationMessagePolicy"] = TERMINATION_MESSAGE_POLICY
        return container


class Buildah:
    """buildah bud + push as root in a user namespace, vfs storage, chroot isolation (see module docstring)."""

    name = BUILDER_BUILDAH

    def read_upload(self, cloud: CloudDriver, upload: BucketURL) -> UploadSource:
        tarball = cloud.upload_tarball(upload)
        return UploadSource(location=tarball.path, volume=tarball.volume, init_containers=tarball.init_containers)

    def container(self, inputs: BuildInputs) -> JSON:
        context = PurePosixPath(WORKSPACE_PATH)
        if inputs.git_path:
            context = context / PurePosixPath(inputs.git_path)
        env = {
            "BUILDAH_ISOLATION": "chroot",
            "BUILD_CONTEXT": str(context),
            "BUILD_DOCKERFILE": str(context / DOCKERFILE),
            "BUILD_REGISTRY": registry_host(inputs.target),
            "BUILD_TARGET": inputs.target,
            "BUILD_TLS_VERIFY": "false" if inputs.insecure_registry else "true",
            "STORAGE_DRIVER": "vfs",
        }
        if inputs.upload:
            env["BUILD_TARBALL"] = inputs.upload
        container: JSON = {
            "name": CONTAINER_BUILDER,
            "image": inputs.image,
            "command": ["/bin/sh", "-c", BUILDAH_SCRIPT],
            "env": [{"name": k, "value": _literal(v)} for k, v in sorted(env.items())],
        }
        put(container, "resources", inputs.resources)
        container["volumeMounts"] = inputs.volume_mounts
        container["securityContext"] = buildah_container_security_context()
        container["terminationMessagePolicy"] = TERMINATION_MESSAGE_POLICY
        return container


BUILDER_IMPLEMENTATIONS: dict[str, Builder] = {BUILDER_KANIKO: Kaniko(), BUILDER_BUILDAH: Buildah()}


def builder_for(name: str) -> Builder:
    """The builder called `name` (one of constants.BUILDERS); ValueError otherwise."""
    try:
        return BUILDER_IMPLEMENTATIONS[name]
    except KeyError:
        raise ValueError(f"unknown builder {name!r}; expected one of {', '.join(BUILDER_IMPLEMENTATIONS)}") from None
