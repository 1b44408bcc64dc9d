"""The Plan: everything one reconcile will do, decided without I/O.

A Plan is complete: it holds every child body the engine writes (the driver's mount objects and the
ServiceAccounts included), every delete, the whole status and the requeue. The engine only carries it out
(controllers/steps.py), in a fixed order, skipping what the cache shows is already so. Two effects need
the outside world and are therefore declared, not performed: signing an upload URL (its result is the one
status field a plan cannot know, `status.buildUpload.signedURL`) and readying storage or the registry.

Invariants:
- Same observation, same `now`, same seed -> equal Plans.
- `delete` holds only children the object owns (they came from its observation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from substratus_controller.cloud.base import BucketURL
from substratus_controller.jsontypes import JSON
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.resource import Resource

Child = tuple[Resource, JSON]


@dataclass
class Plan:
    """One reconcile's decisions, in the order the engine carries them out."""

    status: JSON
    delete: list[Child] = field(default_factory=list)  # owned children to delete (foreground)
    mounts: list[Child] = field(default_factory=list)  # the driver's shared mount objects, before any pod
    service_accounts: list[JSON] = field(default_factory=list)  # bound to the cloud identity, then applied
    new_image: str | None = None  # a build is starting: let the registry accept this image
    prepare: list[BucketURL] = field(default_factory=list)  # artifact prefixes to ready before a workload
    create: list[Child] = field(default_factory=list)  # created when absent, never read back (Secrets)
    apply: list[Child] = field(default_factory=list)  # server-side applied, in order
    spec_image: str | None = None  # a finished build: write spec.image
    sign_upload: tuple[BucketURL, str] | None = None  # (object, md5): sign a URL into status.buildUpload
    requeue_after: float | None = None

    def children(self) -> list[Child]:
        """Every body the engine writes, in its order (mounts, ServiceAccounts, creates, applies)."""
        accounts = [(k8s.SERVICEACCOUNTS, sa) for sa in self.service_accounts]
        return [*self.mounts, *accounts, *self.create, *self.apply]
