"""The container contract, as seen from inside a workload container.

Paths (all under the content dir, `/content` unless `SUBSTRATUS_CONTENT_DIR` says otherwise):
- `params.json`: a JSON object of `spec.params`; every key is also in the environment as `PARAM_<KEY>`
  (key upper-cased, every character outside [A-Z0-9] turned into `_`; strings as is, numbers and booleans as
  their JSON text). `params()` checks both agree, so a workload never silently runs with half its params.
- `artifacts/`: this object's output directory (read-write).
- `data/`: the referenced Dataset's artifacts (read-only).
- `model/`: the referenced Model's artifacts (read-only).

Cache dirs are resolved the standard way and never invented: `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`,
else `~/.cache/huggingface` (and `XDG_CACHE_HOME`, else `~/.cache`, for other caches). Under the operator the
process runs as a uid without a passwd entry in a root-owned image, so these only work because the operator
provides a writable HOME, XDG_CACHE_HOME and HF_HOME; `ensure_dir` turns a missing one into a clear error.

Failures: `fail()` prints one `error: ...` line to stderr, copies it to `/dev/termination-log` when that is
writable (Kubernetes shows it as the container's termination message) and exits with the given code:
2 for bad input or params (`BAD_INPUT`), 1 for anything else (`FAILURE`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, overload

BAD_INPUT = 2
FAILURE = 1

CONTENT_DIR_ENV = "SUBSTRATUS_CONTENT_DIR"
TERMINATION_LOG_ENV = "SUBSTRATUS_TERMINATION_LOG"
DEFAULT_CONTENT_DIR = "/content"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"

_NOT_ENV_CHAR = re.compile(r"[^A-Z0-9]")


class ContractError(Exception):
    """A failure with a message meant for the user and the exit code to leave with."""

    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def log(*parts: object) -> None:
    """Print one line to stdout and flush it (container logs must not sit in a buffer)."""
    print(*parts, flush=True)


def fail(message: str, code: int = FAILURE) -> NoReturn:
    """Report `message` on stderr and in the termination log (when writable), then exit with `code`."""
    line = " ".join(message.split())  # always exactly one line
    print(f"error: {line}", file=sys.stderr, flush=True)
    termination_log = Path(os.environ.get(TERMINATION_LOG_ENV, DEFAULT_TERMINATION_LOG))
    if termination_log.exists() and os.access(termination_log, os.W_OK):
        with contextlib.suppress(OSError):  # the stderr line is already out; nothing better to do
            termination_log.write_text(line + "\n", encoding="utf-8")
    sys.exit(code)


def run(main: Callable[[], None]) -> NoReturn:
    """Run a workload's `main`, turning every failure into `fail()` (never a bare traceback); exit 0 otherwise."""
    try:
        main()
    except ContractError as exc:
        fail(exc.message, exc.code)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), FAILURE)
    except Exception as exc:  # a bug: keep the traceback for debugging, but still end with the one-line error
        traceback.print_exc()
        fail(f"unexpected {type(exc).__name__}: {exc}", FAILURE)
    sys.exit(0)


# --- paths -------------------------------------------------------------------------------------------------


def content_dir() -> Path:
    """The contract's root: `/content`, or `$SUBSTRATUS_CONTENT_DIR` when running outside a container."""
    return Path(os.environ.get(CONTENT_DIR_ENV) or DEFAULT_CONTENT_DIR)


def artifacts_dir() -> Path:
    """This object's output directory (created if missing, e.g. when run by hand)."""
    return ensure_dir(content_dir() / "artifacts", "artifacts directory")


def data_dir() -> Path:
    """The referenced Dataset's artifacts (read-only; may not exist)."""
    return content_dir() / "data"


def model_dir() -> Path:
    """The referenced Model's artifacts (read-only; may not exist)."""
    return content_dir() / "model"


def ensure_dir(path: Path, what: str, hint: str = "") -> Path:
    """Create `path` (and parents) or raise a ContractError naming it (plus `hint`); returns `path`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ContractError(f"cannot create the {what} {path}: {exc.strerror or exc}{hint}", FAILURE) from exc
    return path


def ensure_cache_dir(path: Path, what: str) -> Path:
    """`ensure_dir` for a directory under a cache dir, with a hint about the variables that place it."""
    return ensure_dir(path, what, " (HOME, XDG_CACHE_HOME or HF_HOME must point to a writable directory)")


def _home() -> Path:
    """`~` the way Python resolves it: $HOME, else the passwd entry of the current uid."""
    home = os.path.expanduser("~")
    if home.startswith("~"):
        raise ContractError(f"HOME is not set and uid {os.getuid()} has no passwd entry", FAILURE)
    return Path(home)


def cache_dir() -> Path:
    """The user cache dir: `$XDG_CACHE_HOME`, else `~/.cache` (not created here)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else _home() / ".cache"


def hf_home() -> Path:
    """The Hugging Face cache dir: `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`."""
    hf = os.environ.get("HF_HOME")
    return Path(hf) if hf else cache_dir() / "huggingface"


# --- params ------------------------------------------------------------------------------------------------


def param_env_name(key: str) -> str:
    """`PARAM_<KEY>`: the key upper-cased, every character outside [A-Z0-9] turned into `_`."""
    return "PARAM_" + _NOT_ENV_CHAR.sub("_", key.upper())


def param_env_value(value: Any) -> str:
    """A param's environment form: strings as is, everything else as its JSON text (`3`, `true`, `0.5`)."""
    return value if isinstance(value, str) else json.dumps(value)


def params() -> dict[str, Any]:
    """`params.json`, checked against the `PARAM_*` environment (a missing or different variable is an error)."""
    path = content_dir() / "params.json"
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ContractError(f"{path} not found: the operator mounts the object's params there") from exc
    except (OSError, ValueError) as exc:
        raise ContractError(f"cannot read {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ContractError(f"{path} must hold a JSON object, got {type(loaded).__name__}")
    for key, value in loaded.items():
        name, expected = param_env_name(key), param_env_value(value)
        actual = os.environ.get(name)
        if actual is None:
            raise ContractError(f"param {key!r} is in {path} but environment variable {name} is not set")
        if actual != expected:
            raise ContractError(
                f"param {key!r} is {expected!r} in {path} but environment variable {name} is {actual!r}"
            )
    return loaded


def str_param(values: dict[str, Any], key: str, default: str | None = None) -> str:
    """A non-empty string param; missing means `default`, and missing without a default is an error."""
    value = values.get(key, default)
    if value is None:
        raise ContractError(f"param {key!r} is required")
    if not isinstance(value, str) or not value:
        raise ContractError(f"param {key!r} must be a non-empty string, got {value!r}")
    return value


@overload
def int_param(values: dict[str, Any], key: str, default: int, minimum: int) -> int: ...
@overload
def int_param(values: dict[str, Any], key: str, default: None, minimum: int) -> int | None: ...
def int_param(values: dict[str, Any], key: str, default: int | None, minimum: int) -> int | None:
    """An integer param >= `minimum` (a JSON number or a decimal string); missing means `default`."""
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ContractError(f"param {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def float_param(values: dict[str, Any], key: str, default: float) -> float:
    """A positive finite number param (a JSON number or a numeric string); missing means `default`."""
    value = values.get(key)
    if value is None:
        return default
    error = ContractError(f"param {key!r} must be a positive number, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise error
    try:
        number = float(value)
    except ValueError:
        raise error from None
    if not math.isfinite(number) or number <= 0:
        raise error
    return number
