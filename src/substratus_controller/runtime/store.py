"""An indexed object cache: what informers fill and reconcilers read instead of calling the API server.

Contract:
- Objects are plain dicts keyed `namespace/name` (or `name` when cluster-scoped), the client-go key format.
- Every stored object has `metadata.managedFields` removed, then goes through the optional `transform` (a
  projection keeping only what readers need). Stored objects are shared: readers must not mutate them.
- Indexes map an index value to the set of keys whose object produced it; they are updated on every
  write, so lookups are O(1) in the number of matching objects. Built in: `namespace` and `owner` (the UIDs
  of all ownerReferences). Add others with `add_indexer` before the store is filled.
- Single-threaded (asyncio); no locks.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from substratus_controller.jsontypes import JSON

IndexFunc = Callable[[JSON], Iterable[str]]
Transform = Callable[[JSON], JSON]

INDEX_NAMESPACE = "namespace"
INDEX_OWNER = "owner"


def object_key(obj: JSON) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects."""
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name


def _by_namespace(obj: JSON) -> Iterable[str]:
    ns = obj.get("metadata", {}).get("namespace")
    return (ns,) if ns else ()


def _by_owner(obj: JSON) -> Iterable[str]:
    return [ref["uid"] for ref in obj.get("metadata", {}).get("ownerReferences") or () if "uid" in ref]


def strip_managed_fields(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def projection(*paths: str) -> Transform:
    """A transform keeping only the given dotted paths (e.g. `metadata`, `status`, `spec.replicas`),
    plus `apiVersion` and `kind`. Missing paths are skipped."""
    split = [p.split(".") for p in paths]

    def project(obj: JSON) -> JSON:
        out: JSON = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
        for parts in split:
            src: Any = obj
            for part in parts:
                src = src.get(part) if isinstance(src, dict) else None
                if src is None:
                    break
            else:
                dst = out
                for part in parts[:-1]:
                    dst = dst.setdefault(part, {})
                dst[parts[-1]] = src
        return out

    return project


class Store:
    """Objects by key plus secondary indexes (see module docstring)."""

    def __init__(self, *, transform: Transform | None = None, indexers: dict[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, JSON] = {}
        self._transform = transform
        self._indexers: dict[str, IndexFunc] = {INDEX_NAMESPACE: _by_namespace, INDEX_OWNER: _by_owner}
        self._indexers.update(indexers or {})
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}

    # ------------------------------------------------------------------------------------------- reads
    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[JSON]:
        return iter(list(self._items.values()))

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def get(self, key: str) -> JSON | None:
        return self._items.get(key)

    def get_by_name(self, namespace: str | None, name: str) -> JSON | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> list[JSON]:
        if namespace is None:
            return list(self._items.values())
        return self.by_index(INDEX_NAMESPACE, namespace)

    def index_keys(self, index: str, value: str) -> set[str]:
        return set(self._indices[index].get(value, ()))

    def by_index(self, index: str, value: str) -> builtins.list[JSON]:
        return [self._items[k] for k in self._indices[index].get(value, ())]

    def has_indexer(self, name: str) -> bool:
        return name in self._indexers

    # ------------------------------------------------------------------------------------------- writes
    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Register an index; existing objects are indexed immediately."""
        if name in self._indexers:
            raise ValueError(f"indexer {name!r} already exists")
        self._indexers[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            for value in func(obj):
                self._indices[name].setdefault(value, set()).add(key)

    def prepare(self, obj: JSON) -> JSON:
        """What the store keeps of an object from the API (managedFields stripped, then transformed)."""
        obj = strip_managed_fields(obj)
        return self._transform(obj) if self._transform else obj

    def upsert(self, obj: JSON) -> JSON | None:
        """Store an already prepared object; return the previous one under its key."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        return old

    def delete(self, key: str) -> JSON | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index(self, key: str, obj: JSON) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: JSON) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
