"""Container environment: `spec.env` (literals and secret references), `PARAM_*` vars, controller extras.

Invariants (docs/upstream-behaviour.md §4.3, docs/decisions.md §1 and §2.4):
- A value that is exactly one `${{ secrets.NAME.KEY }}` (whitespace allowed inside the braces and around
  the reference) becomes `valueFrom.secretKeyRef {name: NAME, key: KEY}`. The split is greedy like
  upstream's regex: `secrets.a.b.c` is secret `a.b`, key `c` (secret names may contain dots, keys
  rarely do). NAME must be a DNS subdomain and KEY match `[-._a-zA-Z0-9]+`, as the API server requires.
- Any other value containing `${{` is an InvalidSpecError on `spec.env.<VAR>` (upstream silently turned
  `prefix ${{ secrets.a.b }}` into a secret reference, dropping the prefix). There is no escape syntax.
- Other values are literals; an empty literal is rendered without `value` (same meaning, nothing empty).
- The result is sorted by name; one name set by two sources (spec.env, spec.params, the controller) is an
  InvalidSpecError naming both, never a silent override. Controller *defaults* (HOME, TMPDIR, the caches:
  render/scratch.py) are the exception: they apply only where spec.env does not set the name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from substratus_controller.jsontypes import JSON

from .errors import InvalidSpecError
from .params import ParamsMap, param_env_by_key

_SECRET_REF = re.compile(r"\s*\$\{\{\s*secrets\.(?P<name>[^{}]+)\.(?P<key>[^{}]+?)\s*\}\}\s*")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_TEMPLATE_START = "${{"
_FORM = "${{ secrets.NAME.KEY }}"


def env_var(name: str, value: str) -> JSON:
    """One env var from a `spec.env` entry: a literal, or a secretKeyRef (see module docstring)."""
    field = f"spec.env.{name}"
    if name in (".", "..") or name.startswith(".."):
        raise InvalidSpecError(field, "an environment variable name must not be '.' or '..' or start with '..'")
    if _TEMPLATE_START not in value:
        return {"name": name, "value": value} if value else {"name": name}
    match = _SECRET_REF.fullmatch(value)
    if match is None:
        raise InvalidSpecError(
            field, f"a value containing '${{{{' must be exactly one secret reference {_FORM}, got {value!r}"
        )
    secret, key = match["name"].strip(), match["key"].strip()
    if len(secret) > 253 or not _DNS_SUBDOMAIN.fullmatch(secret):
        raise InvalidSpecError(
            field, f"secret name {secret!r} in {value!r} is not a valid Secret name (lower-case DNS subdomain)"
        )
    if len(key) > 253 or not _SECRET_KEY.fullmatch(key):
        raise InvalidSpecError(field, f"secret key {key!r} in {value!r} must match [-._a-zA-Z0-9]+")
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def user_env(env: Mapping[str, str] | None) -> list[JSON]:
    """`spec.env` as container env vars, sorted by name."""
    return [env_var(name, (env or {})[name]) for name in sorted(env or {})]


def container_env(*, env: Mapping[str, str] | None, params: ParamsMap | None, extra: Sequence[JSON] = (),
                  defaults: Sequence[JSON] = ()) -> list[JSON]:  # fmt: skip
    """User env + `PARAM_*` vars + controller-provided `extra` + the `defaults` spec.env does not override,
    sorted by name; other duplicates are errors."""
    sources: dict[str, str] = {}
    out: list[JSON] = []

    def add(var: JSON, source: str, field: str) -> None:
        name = str(var["name"])
        if name in sources:
            where = f"spec.env.{name}" if "spec.env" in (sources[name], source) else field
            raise InvalidSpecError(
                where, f"environment variable {name} is set by both {sources[name]} and {source}; remove one"
            )
        sources[name] = source
        out.append(var)

    for var in user_env(env):
        add(var, "spec.env", f"spec.env.{var['name']}")
    for key, var in param_env_by_key(params):
        add(var, f"spec.params.{key}", "spec.params")
    for var in extra:
        add(dict(var), "the controller (reserved name)", "spec.env")
    for var in defaults:
        if str(var["name"]) not in sources:
            add(dict(var), "the controller (default)", "spec.env")
    out.sort(key=lambda var: str(var["name"]))
    return out
