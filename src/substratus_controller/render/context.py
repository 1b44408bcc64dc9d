"""What every renderer needs besides the parent object: the cloud driver and the helper images.

Invariants: immutable (frozen), built once at start-up from configuration and shared by all reconcilers;
image references are pinned to a version so that a controller upgrade, not time, changes rendered children.
"""

from __future__ import annotations

from dataclasses import dataclass

from substratus_controller.cloud.base import CloudDriver

DEFAULT_KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
DEFAULT_GIT_IMAGE = "alpine/git:2.45.2"


@dataclass(frozen=True)
class RenderContext:
    """The cloud driver (pure methods only) and the images of the build Job's containers."""

    cloud: CloudDriver
    kaniko_image: str = DEFAULT_KANIKO_IMAGE
    git_image: str = DEFAULT_GIT_IMAGE
