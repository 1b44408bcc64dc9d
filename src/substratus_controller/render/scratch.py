"""Writable directories for workloads that run as a non-root user in images built as root.

Upstream images are built like most ML images: files owned by root, `WORKDIR /content`, no user for uid
1000 in /etc/passwd and no HOME, so under the operator's uid 1000 `HOME` is `/` and `~/.cache` (Hugging
Face, pip, torch), Jupyter's config and runtime directories and often `/tmp` are unwritable. Every workload
pod therefore gets two emptyDir volumes, `home` at HOME_DIR and `tmp` at /tmp (emptyDirs are group 3003
and group-writable under the pod's fsGroup), and environment defaults pointing the usual variables at them.

Invariants:
- The defaults are defaults: a `spec.env` entry of the same name wins (e.g. `HF_HOME=/content/artifacts/hf`
  to keep a cache with the outputs); they never clash with PARAM_* variables.
- Jupyter's directories are set for notebooks only (elsewhere they mean nothing).
"""

from __future__ import annotations

from substratus_controller.cloud.base import BucketVolume
from substratus_controller.constants import HOME_DIR, TMP_DIR
from substratus_controller.jsontypes import JSON

HOME_VOLUME = "home"
TMP_VOLUME = "tmp"
CACHE_DIR = f"{HOME_DIR}/.cache"
JUPYTER_DATA_DIR = f"{HOME_DIR}/.local/share/jupyter"


def scratch_volumes() -> BucketVolume:
    """The `home` and `tmp` emptyDirs and their mounts."""
    return BucketVolume(
        volumes=[{"name": HOME_VOLUME, "emptyDir": {}}, {"name": TMP_VOLUME, "emptyDir": {}}],
        mounts=[{"name": HOME_VOLUME, "mountPath": HOME_DIR}, {"name": TMP_VOLUME, "mountPath": TMP_DIR}],
    )


def scratch_env(*, jupyter: bool = False) -> list[JSON]:
    """Environment defaults pointing HOME, TMPDIR and the caches (and Jupyter's dirs) at the scratch volumes."""
    values = {
        "HOME": HOME_DIR,
        "TMPDIR": TMP_DIR,
        "XDG_CACHE_HOME": CACHE_DIR,
        "HF_HOME": f"{CACHE_DIR}/huggingface",
    }
    if jupyter:
        values |= {
            "JUPYTER_CONFIG_DIR": f"{HOME_DIR}/.jupyter",
            "JUPYTER_DATA_DIR": JUPYTER_DATA_DIR,
            "JUPYTER_RUNTIME_DIR": f"{JUPYTER_DATA_DIR}/runtime",
        }
    return [{"name": k, "value": v} for k, v in sorted(values.items())]
