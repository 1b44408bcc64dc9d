"""What the reconcilers share at run time: the client, the caches, the event recorder, the render context,
the applier, the wall clock and the source of randomness the plans draw from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random, SystemRandom

from substratus_controller.cloud.base import CloudDriver
from substratus_controller.constants import ANNOTATION_APPLIED, FIELD_MANAGER
from substratus_controller.render.context import RenderContext
from substratus_controller.runtime.applier import Applier
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.clock import wall_rfc3339
from substratus_controller.runtime.events import EventRecorder

from .caches import Caches


@dataclass
class Operator:
    """The reconcilers' shared dependencies. `rng` is the OS's randomness in production (SystemRandom:
    tokens are secrets); tests pass a seeded Random."""

    client: Client
    caches: Caches
    recorder: EventRecorder
    ctx: RenderContext
    now: Callable[[], str] = wall_rfc3339
    rng: Random = field(default_factory=SystemRandom)

    def __post_init__(self) -> None:
        self.applier = Applier(self.client, field_manager=FIELD_MANAGER, digest_annotation=ANNOTATION_APPLIED)

    @property
    def cloud(self) -> CloudDriver:
        return self.ctx.cloud
