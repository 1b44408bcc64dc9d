"""The one alias for a decoded Kubernetes object (or any JSON object): `JSON = dict[str, Any]`.

At the bottom of the layers: every module may import it, the runtime included (it knows nothing about
Substratus).
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
