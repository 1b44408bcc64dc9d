"""Reading and checking the object a plugin applies (one substratus.ai/v1 object per manifest).

- A manifest is a YAML (or JSON) file, or `-` for stdin, holding exactly one object; timestamps stay strings
  (YAML 1.1 would turn `2024-01-01` into a date that JSON cannot carry).
- Problems are reported naming the file and the field: `apiVersion`, `kind`, `metadata.name`, or the
  path pydantic reports for the spec (`spec.resources.cpu: Input should be greater than or equal to 0`).
- `prepare` turns a manifest (or an object read from the cluster) into an apply body: server-populated
  fields (`status`, `managedFields`, `resourceVersion`, `uid`, ...) are dropped, the namespace is set.
- `with_upload` sets `spec.build = {upload: {md5Checksum, requestID}}` and drops `spec.image` (the build sets
  it) and any git source; the result is validated against the typed models before anything is sent.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from substratus_controller.api.v1.kinds import KINDS
from substratus_controller.constants import API_VERSION, Kind
from substratus_controller.jsontypes import JSON

from .commandline import PluginError

_SERVER_FIELDS = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink",
                  "deletionTimestamp", "deletionGracePeriodSeconds")  # fmt: skip
_MODEL_OF = {cls.KIND: cls for cls in KINDS}


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: dates stay strings, as in JSON."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: str) -> JSON:
    """The one object in the manifest at `path` (`-`: stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except FileNotFoundError:
        raise PluginError(f'the path "{path}" does not exist') from None
    except IsADirectoryError:
        raise PluginError(f'the path "{path}" is a directory, not a manifest file') from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"cannot read {path}: {exc}") from None
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PluginError(f"{path}: invalid YAML: {problem}{where}") from None
    if len(docs) != 1:
        raise PluginError(f"{path}: the manifest must hold exactly one object, found {len(docs)}")
    obj = docs[0]
    if not isinstance(obj, dict):
        raise PluginError(f"{path}: the manifest must hold an object (a mapping), found {type(obj).__name__}")
    return obj


def kind_of(obj: JSON, source: str, allowed: tuple[Kind, ...] = tuple(Kind)) -> Kind:
    """The object's Kind, after checking apiVersion, kind and metadata.name."""
    api_version = obj.get("apiVersion")
    if not api_version:
        raise PluginError(f"{source}: apiVersion: required ({API_VERSION})")
    if api_version != API_VERSION:
        raise PluginError(f"{source}: apiVersion: {api_version!r} is not {API_VERSION}")
    names = ", ".join(k.value for k in allowed)
    kind_name = obj.get("kind")
    if not kind_name:
        raise PluginError(f"{source}: kind: required (one of {names})")
    try:
        kind = Kind(kind_name)
    except ValueError:
        raise PluginError(f"{source}: kind: {kind_name!r} is not one of {names}") from None
    if kind not in allowed:
        raise PluginError(f"{source}: kind: this command needs a {names}, the manifest holds a {kind.value}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise PluginError(f"{source}: metadata: required (with a name)")
    name = meta.get("name")
    if not name:
        hint = " (generateName is not supported)" if meta.get("generateName") else ""
        raise PluginError(f"{source}: metadata.name: required{hint}")
    cls = _MODEL_OF[kind]
    if not isinstance(name, str) or not re.fullmatch(cls.NAME_PATTERN, name) or len(name) > 63:
        raise PluginError(f"{source}: metadata.name: {name!r} must be {cls.NAME_RULE}")
    ns = meta.get("namespace")
    if ns is not None and (not isinstance(ns, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", ns)):
        raise PluginError(f"{source}: metadata.namespace: {ns!r} is not a valid namespace name")
    return kind


def prepare(obj: JSON, namespace: str) -> JSON:
    """An apply body: the object without status and server-populated metadata, in `namespace`."""
    body = copy.deepcopy(obj)
    body.pop("status", None)
    meta = body.setdefault("metadata", {})
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    meta["namespace"] = namespace
    body.setdefault("spec", {})
    return body


def with_upload(body: JSON, md5_hex: str, request_id: str) -> JSON:
    """`body` building from an upload of `md5_hex` (see module docstring)."""
    out = copy.deepcopy(body)
    spec = out.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise PluginError("spec: must be an object")
    spec.pop("image", None)
    spec["build"] = {"upload": {"md5Checksum": md5_hex, "requestID": request_id}}
    return out


def validate(body: JSON, kind: Kind, source: str) -> None:
    """Check `body` against the typed model of its kind; the error names every offending field."""
    try:
        _MODEL_OF[kind].model_validate(body)
    except ValidationError as exc:
        problems = [f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise PluginError(f"{source}: invalid {kind.value}: {'; '.join(problems)}") from None


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "tagged-union")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(object)"
