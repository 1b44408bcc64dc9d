"""Container image layers and `docker save` archives, written without a daemon or a registry.

A layer is an uncompressed tar of a filesystem change set, stored once per content (its file name is its
diff id, the sha256 of the tar). An image is a list of layers plus a config (env, entrypoint, cmd, working
directory, exposed ports, labels). `write_archive` writes several images into one `docker save` archive
(each layer once), which `ctr images import` and `docker load` read.

Invariants:
- Layers are reproducible for the same tree: entries are sorted, owners are numeric (uname/gname empty),
  and modes, owners and mtimes are taken from the files as they are. The tree's owners are kept, so a tree
  prepared as root gives root-owned image files, as a Docker build would.
- A directory tree becomes a layer with `tree_layer`; a change set (paths added or changed, paths removed)
  with `diff_layer`, which writes `.wh.<name>` whiteouts for removed paths (the OCI layer convention).
- `/proc`, `/sys` and `/dev` are kept as empty directories: their contents belong to the runtime.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNTIME_DIRS = frozenset({"proc", "sys", "dev"})
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Layer:
    """An uncompressed layer tar in a layer store; `diff_id` is `sha256:<hex of the tar>`."""

    path: Path
    diff_id: str
    size: int


@dataclass
class ImageConfig:
    """The part of an image config a runtime reads (the OCI/Docker `config` object)."""

    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    working_dir: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Env": list(self.env), "Entrypoint": self.entrypoint, "Cmd": self.cmd,
                               "WorkingDir": self.working_dir}  # fmt: skip
        if self.exposed_ports:
            out["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in self.exposed_ports}
        if self.labels:
            out["Labels"] = dict(self.labels)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageConfig:
        return cls(
            env=list(data.get("Env") or []),
            entrypoint=data.get("Entrypoint"),
            cmd=data.get("Cmd"),
            working_dir=data.get("WorkingDir") or "",
            exposed_ports=[p.removesuffix("/tcp") for p in data.get("ExposedPorts") or {}],
            labels=dict(data.get("Labels") or {}),
        )

    def env_dict(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.env if "=" in item)

    def set_env(self, name: str, value: str) -> None:
        self.env = [e for e in self.env if e.split("=", 1)[0] != name] + [f"{name}={value}"]


@dataclass
class Image:
    """A reference (`substratus.local/python:3.11`), its layers (bottom first) and its config."""

    ref: str
    layers: list[Layer]
    config: ImageConfig
    history: list[str] = field(default_factory=list)  # one `created_by` per layer

    def config_blob(self) -> bytes:
        created = "1970-01-01T00:00:00Z"
        history = self.history or [f"substratus image layer {i}" for i in range(len(self.layers))]
        body = {
            "architecture": go_arch(),
            "os": "linux",
            "created": created,
            "config": self.config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            # one history entry per layer: buildah/podman `--layers` builds FROM an image without it fail
            "history": [{"created": created, "created_by": h} for h in history],
        }
        return json.dumps(body, sort_keys=True).encode()

    @property
    def id(self) -> str:
        """The image id: sha256 of the config blob (what `ctr images ls` shows as the config digest)."""
        return "sha256:" + hashlib.sha256(self.config_blob()).hexdigest()


def go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class LayerStore:
    """A folder of layer tars named by content (`<hex>.tar`); adding the same content twice keeps one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, diff_id: str) -> Layer:
        path = self.root / f"{diff_id.removeprefix('sha256:')}.tar"
        if not path.is_file():
            raise FileNotFoundError(f"layer {diff_id} is not in {self.root}")
        return Layer(path, diff_id, path.stat().st_size)

    def add(self, write: Iterable[tuple[tarfile.TarInfo, Path | None]]) -> Layer:
        """Write the entries (TarInfo, file to read the content from or None) as a layer; return it."""
        fd, tmp_name = tempfile.mkstemp(dir=self.root, suffix=".partial")
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as raw:
                sink = _HashingWriter(raw, digest)
                with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for info, source in write:
                        if source is not None:
                            with source.open("rb") as f:
                                tar.addfile(info, f)
                        else:
                            tar.addfile(info)
            diff_id = "sha256:" + digest.hexdigest()
            final = self.root / f"{digest.hexdigest()}.tar"
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Layer(final, diff_id, final.stat().st_size)


class _HashingWriter(io.RawIOBase):
    def __init__(self, raw: Any, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.digest.update(data)
        self.raw.write(data)
        return len(data)


def _tarinfo(root: Path, rel: str, hardlinks: dict[tuple[int, int], str]) -> tuple[tarfile.TarInfo, Path | None]:
    path = root / rel
    st = os.lstat(path)
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    source: Path | None = None
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in hardlinks:
            info.type = tarfile.LNKTYPE
            info.linkname = hardlinks[key]
        else:
            if st.st_nlink > 1:
                hardlinks[key] = rel
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            source = path
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:  # device nodes and sockets never go into an image
        raise ValueError(f"{rel}: cannot put a device node or socket into a layer")
    return info, source


def walk(root: Path) -> Iterator[str]:
    """Every path below `root` (relative, sorted, parents first), skipping the contents of RUNTIME_DIRS."""
    for top, dirs, files in os.walk(root):
        rel_top = os.path.relpath(top, root)
        if rel_top != "." and rel_top.split(os.sep)[0] in RUNTIME_DIRS:
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(top, name)
            rel = os.path.relpath(full, root)
            if name in files:
                mode = os.lstat(full).st_mode
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
                    continue
            yield rel


def tree_layer(store: LayerStore, root: Path) -> Layer:
    """The whole tree under `root` as one layer."""
    hardlinks: dict[tuple[int, int], str] = {}
    return store.add(_tarinfo(root, rel, hardlinks) for rel in walk(root))


Snapshot = dict[str, tuple[int, int, int, int, int, str]]


def snapshot(root: Path) -> Snapshot:
    """What identifies each path's state (mode, owner, size, mtime, link target) for `diff_layer`."""
    out: Snapshot = {}
    for rel in walk(root):
        st = os.lstat(root / rel)
        link = os.readlink(root / rel) if stat.S_ISLNK(st.st_mode) else ""
        out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, link)
    return out


def diff_layer(store: LayerStore, root: Path, before: Snapshot) -> Layer:
    """A layer holding what changed under `root` since `before` (changed or new paths, whiteouts)."""
    after = snapshot(root)
    changed = [rel for rel, state in after.items() if before.get(rel) != state]
    removed = [rel for rel in before if rel not in after]
    # a removed directory needs one whiteout, not one per file inside it
    removed_dirs = sorted(r for r in removed if stat.S_ISDIR(before[r][0]))
    removed = [r for r in removed if not any(r.startswith(d + os.sep) for d in removed_dirs)]
    hardlinks: dict[tuple[int, int], str] = {}
    entries: list[tuple[tarfile.TarInfo, Path | None]] = []
    for rel in sorted(
        set(changed) | {os.path.join(os.path.dirname(r), WHITEOUT + os.path.basename(r)) for r in removed}
    ):
        if os.path.basename(rel).startswith(WHITEOUT):
            info = tarfile.TarInfo(rel)
            info.uname = info.gname = ""
            entries.append((info, None))
        else:
            entries.append(_tarinfo(root, rel, hardlinks))
    return store.add(entries)


def extract(layers: Sequence[Layer], root: Path) -> None:
    """Unpack `layers` (bottom first) into `root`, applying whiteouts; owners are kept when run as root."""
    root.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        with tarfile.open(layer.path) as tar:
            for member in tar:
                rel = os.path.normpath(member.name)
                if rel.startswith("..") or os.path.isabs(rel):
                    raise ValueError(f"{layer.diff_id}: unsafe path {member.name!r}")
                base = os.path.basename(rel)
                parent = root / os.path.dirname(rel)
                if base == OPAQUE:
                    for child in parent.iterdir() if parent.is_dir() else ():
                        _remove(child)
                    continue
                if base.startswith(WHITEOUT):
                    _remove(parent / base.removeprefix(WHITEOUT))
                    continue
                target = root / rel
                if target.is_dir() and not target.is_symlink() and member.isdir():
                    os.chmod(target, member.mode)
                    if os.geteuid() == 0:
                        os.lchown(target, member.uid, member.gid)
                    continue
                if target.exists() or target.is_symlink():
                    _remove(target)
                tar.extract(member, root, set_attrs=True, numeric_owner=True, filter="fully_trusted")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_archive(images: Sequence[Image], out: Path) -> Path:
    """One `docker save` archive holding `images` (each layer stored once), written atomically to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".partial")
    now = int(time.time())

    def blob(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), now, 0o644
        tar.addfile(info, io.BytesIO(data))

    manifest = []
    written: set[str] = set()
    with tarfile.open(tmp, "w") as tar:
        for image in images:
            config = image.config_blob()
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            if config_name not in written:
                blob(tar, config_name, config)
                written.add(config_name)
            names = []
            for layer in image.layers:
                name = f"{layer.diff_id.removeprefix('sha256:')}/layer.tar"
                if name not in written:
                    tar.add(layer.path, arcname=name)
                    written.add(name)
                names.append(name)
            manifest.append({"Config": config_name, "RepoTags": [image.ref], "Layers": names})
        blob(tar, "manifest.json", json.dumps(manifest).encode())
    os.replace(tmp, out)
    return out
