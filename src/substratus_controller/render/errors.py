"""Errors a renderer raises when the user's spec cannot be turned into children.

Invariants:
- `InvalidSpecError` always names the offending field as a JSON path (`spec.env.FOO`, `spec.params`), and its
  message starts with that path, so a reconciler can copy it verbatim into an `InvalidSpec` condition and an
  Event. It is a user error: record it, do not retry until the object changes.
- `UnsupportedGPUError` (defined by the cloud layer, re-exported here) means the GPU type cannot be placed on
  this cloud; reconcilers report it as `UnsupportedGPU`, also without retrying.
- Programming errors of the caller (an object without a namespace or uid, a dependency URL for a reference
  the spec does not make) are plain `ValueError`s, never `InvalidSpecError`.
"""

from __future__ import annotations

from substratus_controller.cloud.base import UnsupportedGPUError

__all__ = ["InvalidSpecError", "UnsupportedGPUError"]


class InvalidSpecError(ValueError):
    """The spec cannot be rendered; `field` is the JSON path of the offending field (e.g. `spec.env.FOO`)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.detail = message
        super().__init__(f"{field}: {message}")
