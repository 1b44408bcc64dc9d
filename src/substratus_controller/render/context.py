"""What every renderer needs besides the parent object: the cloud driver and how images are built.

Invariants: immutable (frozen), built once at start-up from configuration and shared by all reconcilers;
image references are pinned to a version so that a controller upgrade, not time, changes rendered children.
`RenderContext(cloud=driver)` alone means what it always meant: Kaniko, its pinned image, a TLS registry.
The per-cloud defaults of the settings (buildah and a plain-HTTP registry on the local cloud) are applied
by the configuration (settings.py), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from substratus_controller.cloud.base import CloudDriver
from substratus_controller.constants import (
    BUILDER_BUILDAH,
    BUILDER_KANIKO,
    BUILDERS,
    NETWORK_POLICIES,
    NETWORK_POLICY_NONE,
)

DEFAULT_KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
DEFAULT_BUILDAH_IMAGE = "quay.io/buildah/stable:v1.38.0"
DEFAULT_BUILDER_IMAGES = {BUILDER_KANIKO: DEFAULT_KANIKO_IMAGE, BUILDER_BUILDAH: DEFAULT_BUILDAH_IMAGE}
DEFAULT_GIT_IMAGE = "alpine/git:2.45.2"  # entrypoint `git`


@dataclass(frozen=True)
class RenderContext:
    """The cloud driver (pure methods only) and the build Job's settings.

    `builder` is one of BUILDERS; `builder_image` "" means that builder's default image; `insecure_registry`
    says the registry of built images speaks plain HTTP (pushes and base-image pulls skip TLS);
    `notebook_network_policy` is one of NETWORK_POLICIES (render/notebook.py).
    """

    cloud: CloudDriver
    builder: str = BUILDER_KANIKO
    builder_image: str = ""
    git_image: str = DEFAULT_GIT_IMAGE
    insecure_registry: bool = False
    notebook_network_policy: str = NETWORK_POLICY_NONE

    def __post_init__(self) -> None:
        if self.builder not in BUILDERS:
            raise ValueError(f"unknown builder {self.builder!r}; expected one of {', '.join(BUILDERS)}")
        if self.notebook_network_policy not in NETWORK_POLICIES:
            raise ValueError(f"unknown notebook network policy {self.notebook_network_policy!r}")
        if not self.builder_image:
            object.__setattr__(self, "builder_image", DEFAULT_BUILDER_IMAGES[self.builder])
