"""`spec.params` as the workload sees it: `/content/params.json` and `PARAM_<KEY>` environment variables.

Invariants (docs/decisions.md §1, docs/upstream-behaviour.md §4.1, §4.2):
- params.json is `json.dumps(params, indent=2, sort_keys=True)`: 2-space indent, keys sorted, ints as JSON
  numbers, strings as JSON strings, non-ASCII kept as UTF-8 (not `\\u` escapes), and no trailing newline,
  exactly like upstream's Go `json.MarshalIndent`; no params (None or empty) is literally `{}`.
- Each param also becomes `PARAM_<KEY>` where KEY is the key upper-cased with every character outside
  `[A-Z0-9]` turned into `_`; the value is the param's string form (ints in decimal). Two keys that map to
  the same variable are an InvalidSpecError on `spec.params` (never a silent overwrite).
- Env lists are sorted by name; an empty value is rendered as a variable without `value` (same meaning).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from substratus_controller.constants import PARAM_ENV_PREFIX, Kind
from substratus_controller.jsontypes import JSON

from .bodies import child_metadata, identity
from .errors import InvalidSpecError
from .labels import Parent
from .names import params_configmap_name

PARAMS_KEY = "params.json"
MAX_PARAMS_JSON = 1024 * 1024 - 16 * 1024  # bytes: a ConfigMap's 1 MiB, less room for its metadata
_NOT_ENV_CHAR = re.compile(r"[^A-Z0-9]")

ParamsMap = Mapping[str, int | str]


def params_json(params: ParamsMap | None) -> str:
    """The content of `/content/params.json` (see module docstring)."""
    return json.dumps(dict(params or {}), indent=2, sort_keys=True, ensure_ascii=False)


def param_env_name(key: str) -> str:
    """`PARAM_<UPPER(key)>` with every character outside [A-Z0-9] turned into `_`."""
    return PARAM_ENV_PREFIX + _NOT_ENV_CHAR.sub("_", key.upper())


def param_env_by_key(params: ParamsMap | None) -> list[tuple[str, JSON]]:
    """(param key, env var) pairs sorted by variable name; colliding names raise InvalidSpecError."""
    seen: dict[str, str] = {}
    out: list[tuple[str, JSON]] = []
    for key in sorted(params or {}):
        name = param_env_name(key)
        if name in seen:
            raise InvalidSpecError(
                "spec.params",
                f"params {seen[name]!r} and {key!r} both become environment variable {name}; rename one of them",
            )
        seen[name] = key
        value = str((params or {})[key])
        out.append((key, {"name": name, "value": value} if value else {"name": name}))
    out.sort(key=lambda pair: str(pair[1]["name"]))
    return out


def param_env(params: ParamsMap | None) -> list[JSON]:
    """The `PARAM_*` environment variables of `params`, sorted by name."""
    return [var for _, var in param_env_by_key(params)]


def params_configmap(obj: Parent, kind: Kind) -> JSON:
    """The ConfigMap `<name>-<kind>-params` holding `params.json`, owned by `obj`; InvalidSpecError when
    params.json is larger than a ConfigMap may be (MAX_PARAMS_JSON: the API server's 1 MiB, less room for
    the metadata)."""
    name, _ = identity(obj, kind)
    content = params_json(obj.spec.params)
    size = len(content.encode())
    if size > MAX_PARAMS_JSON:
        raise InvalidSpecError(
            "spec.params", f"params.json would be {size} bytes; a ConfigMap holds at most {MAX_PARAMS_JSON}"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(obj, kind, name=params_configmap_name(kind, name), role=None),
        "data": {PARAMS_KEY: content},
    }
