"""The build context: a deterministic gzip'd tarball of a directory, and its md5.

Invariants:
- The same tree gives byte-for-byte the same tarball (hence the same md5), whatever the files' mtimes,
  owners, umask or creation order: entries are sorted by path (a directory before its contents), every
  header has mtime 0, uid/gid 0, empty user/group names, mode 0755 for directories and executable files and
  0644 for other files; the gzip header has mtime 0 and no file name; the compression level is fixed.
- Only regular files and directories are packed; symlinks, devices, sockets and FIFOs are skipped (and
  never followed).
- `.dockerignore` is honoured with Docker's semantics (dockerignore.py). Like Docker, the Dockerfile and the
  .dockerignore itself are always sent even when a pattern excludes them: the builder needs the Dockerfile,
  and Kaniko applies the .dockerignore again when it runs COPY/ADD, so excluded files never reach the image.
- A directory needs a regular file named `Dockerfile` at its root.
- md5 is the lower-case hex digest of the .tar.gz bytes, computed while writing.
- A file that changes size while it is read is an error naming it (the md5 would not describe the tree).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .commandline import PluginError
from .dockerignore import DockerignoreError, Matcher

DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
ALWAYS_SENT = (DOCKERFILE, DOCKERIGNORE)
COMPRESS_LEVEL = 6
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One member: its path in the archive, where it is on disk, and its normalised mode."""

    name: str
    path: Path
    is_dir: bool
    mode: int
    size: int = 0


@dataclass(frozen=True)
class Tarball:
    path: Path
    md5_hex: str
    size: int
    files: int


def _sort_key(name: str) -> tuple[str, ...]:
    return tuple(name.split("/"))


def check_context(directory: Path) -> None:
    """The directory exists and holds a regular-file Dockerfile (else a PluginError naming the problem)."""
    if not directory.exists():
        raise PluginError(f"{directory} does not exist")
    if not directory.is_dir():
        raise PluginError(f"{directory} is not a directory")
    try:
        st = (directory / DOCKERFILE).lstat()
    except FileNotFoundError:
        raise PluginError(f"{directory} does not contain a Dockerfile") from None
    if not stat.S_ISREG(st.st_mode):
        raise PluginError(f"{directory} does not contain a Dockerfile (it is not a regular file)")


def collect(directory: Path, matcher: Matcher | None = None) -> list[Entry]:
    """The members of the context of `directory`, sorted (see module docstring)."""
    if matcher is None:
        try:
            matcher = Matcher.for_context(directory)
        except DockerignoreError as exc:
            raise PluginError(f"{directory / DOCKERIGNORE}: {exc}") from None
    entries: dict[str, Entry] = {}

    def add_parents(name: str) -> None:
        parent = name.rpartition("/")[0]
        while parent and parent not in entries:
            entries[parent] = Entry(parent, directory / parent, True, 0o755)
            parent = parent.rpartition("/")[0]

    def walk(current: Path, prefix: str) -> None:
        try:
            children = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            raise PluginError(f"cannot read {current}: {exc.strerror or exc}") from None
        for child in children:
            name = f"{prefix}{child.name}"
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we looked
            if stat.S_ISDIR(st.st_mode):
                if not matcher.excluded(name):
                    entries[name] = Entry(name, Path(child.path), True, 0o755)
                    add_parents(name)
                    walk(Path(child.path), f"{name}/")
                elif matcher.has_exclusions and matcher.may_reinclude_below(name):
                    walk(Path(child.path), f"{name}/")
            elif stat.S_ISREG(st.st_mode) and (
                (prefix == "" and child.name in ALWAYS_SENT) or not matcher.excluded(name)
            ):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                entries[name] = Entry(name, Path(child.path), False, mode, st.st_size)
                add_parents(name)
            # anything else (symlinks, devices, sockets, FIFOs) is skipped

    walk(directory, "")
    return sorted(entries.values(), key=lambda e: _sort_key(e.name))


class _HashingWriter:
    """A write-only file object that feeds an md5 and counts bytes on the way to `raw`."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _Reader:
    """Reads exactly `size` bytes of an open file, reporting progress; shorter means the file changed."""

    def __init__(self, f: BinaryIO, name: str, size: int, progress: Callable[[int], None]) -> None:
        self.f, self.name, self.left, self.progress = f, name, size, progress

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        data = self.f.read(want)
        if len(data) < want:
            raise PluginError(f"{self.name} changed while it was packed; try again")
        self.left -= len(data)
        self.progress(len(data))
        return data


def total_size(entries: list[Entry]) -> int:
    return sum(e.size for e in entries)


def _add(tar: tarfile.TarFile, entry: Entry, advance: Callable[[int], None]) -> int:
    """Add one member; 1 for a file, 0 for a directory."""
    info = tarfile.TarInfo(entry.name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = entry.mode
    if entry.is_dir:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        return 0
    try:
        f = entry.path.open("rb")
    except OSError as exc:
        raise PluginError(f"cannot read {entry.name}: {exc.strerror or exc}") from None
    with f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PluginError(f"{entry.name} changed while it was packed; try again")
        info.size = st.st_size
        tar.addfile(info, _Reader(f, entry.name, st.st_size, advance))
    return 1


def pack(
    directory: Path, dest: Path, *, entries: list[Entry] | None = None, progress: Callable[[int], None] | None = None
) -> Tarball:
    """Write the context of `directory` to `dest` (.tar.gz) and return its md5 (see module docstring)."""
    check_context(directory)
    members = collect(directory) if entries is None else entries
    advance = progress or (lambda _n: None)
    files = 0
    with dest.open("wb") as raw:
        sink = _HashingWriter(raw)
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=COMPRESS_LEVEL)
        with gz, tarfile.TarFile(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in members:
                files += _add(tar, entry, advance)
    return Tarball(dest, sink.md5.hexdigest(), sink.size, files)
