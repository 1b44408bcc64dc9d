r"""Sync-back: files that change under /content in the notebook pod are copied to the local directory.

Pod side: `WATCHER`, a small Python program run through `kubectl exec ... -- python3 -c WATCHER /content`
(the notebook image has python3; no tool has to be copied into the pod). It polls the tree every second and
prints one JSON line per change, `{"path": "/content/src/a.py", "op": "WRITE"}`, with op `CREATE`, `WRITE`
or `REMOVE` (nbwatch's names, docs/upstream-behaviour.md §7.4). It skips `data/`, `model/`, `artifacts/` and
`params.json` at the top (what the operator mounts there), every dot-file and dot-directory (`.git`,
`.ipynb_checkpoints`, Jupyter's temporary files), symlinks and anything that is not a regular file. Files that exist
when it starts are the baseline and are not reported, except those modified since `since` (the pod's start): a
file saved between the pod's start and the watcher's start is still synced.

Client side (`Syncer`): for CREATE/WRITE the file is read with `kubectl exec ... -- head -c LIMIT -- PATH`
(at most MAX_SYNC_BYTES; a larger file is reported, not synced) and written next to its target then renamed
into place; REMOVE (and RENAME) deletes the local copy and then the directories that removal left empty
(never the root). Sync is one-way (pod -> local). The laptop does not trust the pod (README, Security model):
- paths are checked again locally: only paths below /content, never with `..`, dot components, control
  characters, NUL, `\` or `:` (Windows separators and drives), the skipped top-level directories, or the
  build's own `Dockerfile`, so a pod cannot write outside DIR nor change what the next build runs;
- no symbolic link is ever followed: every component below DIR is checked before a write or a delete;
- a local file is overwritten only when it is unchanged since the session started or since this sync last
  wrote it, and deleted only when this sync wrote it and it is unchanged since (a file edited locally
  meanwhile is kept, with a warning);
- printed names are escaped; a bad entry is reported and the sync goes on.
Ops may be `|`-joined (fsnotify style); unknown ops are ignored. The exec is supervised like port-forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from substratus_controller.constants import CONTAINER_NOTEBOOK, CONTENT_DIR

from .commandline import Output
from .kubectl import Kubectl, Run, run_child, supervise

SKIPPED_TOP = frozenset({"data", "model", "artifacts", "params.json"})
NEVER_SYNCED_TOP = frozenset({"Dockerfile"})  # the build's own input: a pod must not choose the next build
POLL_SECONDS = 1.0
MAX_SYNC_BYTES = 64 * 1024 * 1024  # one file's largest transfer
_UNSAFE = frozenset({"\\", ":"})

LocalState = tuple[int, int]  # (mtime_ns, size) of a regular file


class SyncRefused(Exception):
    """A pod path that must not touch the local directory (a symlink on the way, a changed local file)."""


def shown(text: str) -> str:
    """`text` safe to print: control and other non-printable characters escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _unsafe(part: str) -> bool:
    return any(not c.isprintable() or c in _UNSAFE for c in part)


WATCHER = r"""
import json, os, stat, sys, time
root = sys.argv[1] if len(sys.argv) > 1 else "/content"
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
since = float(sys.argv[3]) if len(sys.argv) > 3 else None
skip = {"data", "model", "artifacts", "params.json"}
def scan():
    seen = {}
    for top, dirs, files in os.walk(root):
        at_root = os.path.normpath(top) == os.path.normpath(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (at_root and d in skip)]
        for name in files:
            if name.startswith(".") or (at_root and name in skip):
                continue
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                seen[path] = (st.st_mtime_ns, st.st_size)
    return seen
def emit(path, op):
    sys.stdout.write(json.dumps({"path": path, "op": op}) + "\n")
old = scan()
if since is not None:
    for path in sorted(old):
        if old[path][0] / 1e9 >= since:
            emit(path, "CREATE")
    sys.stdout.flush()
while True:
    time.sleep(interval)
    new = scan()
    for path in sorted(new):
        if path not in old:
            emit(path, "CREATE")
        elif new[path] != old[path]:
            emit(path, "WRITE")
    for path in sorted(old):
        if path not in new:
            emit(path, "REMOVE")
    sys.stdout.flush()
    old = new
"""


def watcher_command(root: str = CONTENT_DIR, since: float | None = None) -> list[str]:
    """The watcher's command line; `since` (epoch seconds): also report files modified since then."""
    tail = [f"{POLL_SECONDS:g}", f"{since:.3f}"] if since is not None else []
    return ["python3", "-c", WATCHER, root, *tail]


def relative_path(pod_path: str, root: str = CONTENT_DIR) -> PurePosixPath | None:
    """The path below `root` to mirror locally, or None when it must not be synced."""
    try:
        rel = PurePosixPath(pod_path).relative_to(root)
    except ValueError:
        return None
    parts = rel.parts
    if not parts or parts[0] in SKIPPED_TOP or (len(parts) == 1 and parts[0] in NEVER_SYNCED_TOP):
        return None
    if any(p in ("", ".", "..") or p.startswith(".") or _unsafe(p) for p in parts):
        return None
    return rel


def checked_target(root: Path, rel: PurePosixPath) -> Path:
    """root/rel, after checking that no existing component below `root` is a symbolic link (SyncRefused)."""
    path = root
    for part in rel.parts:
        path = path / part
        if path.is_symlink():
            raise SyncRefused(f"{shown(str(rel))}: {shown(str(path.relative_to(root)))} is a symbolic link")
    return path


def local_state(path: Path) -> LocalState | None:
    """(mtime_ns, size) of a regular file (not following a symlink), None when there is none."""
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_mtime_ns, st.st_size) if stat.S_ISREG(st.st_mode) else (-1, -1)


def snapshot(root: Path) -> dict[str, LocalState]:
    """The regular files below `root` (not through symlinks) and their state, by POSIX relative path."""
    out: dict[str, LocalState] = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (Path(top) / d).is_symlink()]
        for name in files:
            path = Path(top) / name
            state = local_state(path)
            if state is not None and state[0] >= 0:
                out[path.relative_to(root).as_posix()] = state
    return out


@dataclass
class Event:
    path: str
    ops: frozenset[str]


def parse_event(line: str) -> Event | None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("path"), str) or not isinstance(data.get("op"), str):
        return None
    return Event(data["path"], frozenset(op.strip().upper() for op in data["op"].split("|")))


def write_file(root: Path, rel: PurePosixPath, data: bytes) -> None:
    """Write `data` to root/rel atomically (temporary file in the same directory, then rename); SyncRefused
    when a component on the way is a symbolic link."""
    target = checked_target(root, rel)
    parent = root
    for part in rel.parts[:-1]:  # one level at a time, each checked: never create through a link
        parent = parent / part
        if not parent.is_dir():
            parent.mkdir()
        if parent.is_symlink():
            raise SyncRefused(f"{shown(str(rel))}: {shown(part)} is a symbolic link")
    if target.is_dir():
        raise IsADirectoryError(f"{shown(str(rel))} is a directory locally")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".sync", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_file(root: Path, rel: PurePosixPath) -> bool:
    """Delete the regular file root/rel and the parent directories that became empty; True if removed.
    SyncRefused when a component on the way (the file included) is a symbolic link."""
    target = checked_target(root, rel)
    if not target.is_file():
        return False
    target.unlink()
    parent = target.parent
    root_resolved = root.resolve()
    while parent.resolve() != root_resolved and root_resolved in parent.resolve().parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
    return True


class Syncer:
    """Runs the watcher in the pod and mirrors its events into `root` (see module docstring)."""

    def __init__(self, kubectl: Kubectl, pod: str, root: Path, out: Output, *, container: str = CONTAINER_NOTEBOOK,
                 since: Callable[[], float | None] = lambda: None) -> None:  # fmt: skip
        self.kubectl, self.pod, self.root, self.out, self.container = kubectl, pod, root, out, container
        self.since = since
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.handled = 0
        self.baseline = snapshot(root) if root.is_dir() else {}  # what DIR held when the session started
        self.written: dict[str, LocalState] = {}  # what this sync wrote, as it left it

    async def run(self, stop: asyncio.Event) -> None:
        worker = asyncio.create_task(self._work())
        try:
            await supervise(f"sync from pod/{self.pod}", lambda: self._once(stop), stop, report=self.out.info)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _once(self, stop: asyncio.Event) -> Run | None:
        argv = self.kubectl.exec_argv(self.pod, self.container, watcher_command(since=self.since()))
        self.out.detail(f"sync: watching {CONTENT_DIR} in pod/{self.pod}", level=2)
        return await run_child(self.kubectl, argv, stop, on_stdout=self.queue.put_nowait,
                               on_stderr=lambda line: self.out.detail(f"sync: {line}"))  # fmt: skip

    async def _work(self) -> None:
        while True:
            line = await self.queue.get()
            try:
                await self.handle(line)
            except Exception as exc:  # one bad entry must not end the sync
                self.out.warning(f"sync: skipping an entry: {shown(str(exc))[:300]}")
            finally:
                self.queue.task_done()

    def _may_overwrite(self, rel: PurePosixPath) -> bool:
        """Absent locally, or unchanged since the session started or since this sync last wrote it."""
        key = rel.as_posix()
        state = local_state(self.root.joinpath(*rel.parts))
        if state is None:
            return True
        return state == self.written.get(key) or (key not in self.written and state == self.baseline.get(key))

    def _may_remove(self, rel: PurePosixPath) -> bool:
        """Written by this sync and unchanged since."""
        key = rel.as_posix()
        return key in self.written and local_state(self.root.joinpath(*rel.parts)) == self.written[key]

    async def handle(self, line: str) -> None:
        """Apply one watcher line to the local directory."""
        event = parse_event(line)
        if event is None:
            if line.strip():
                self.out.detail(f"sync: ignoring {line.strip()[:200]!r}")
            return
        rel = relative_path(event.path)
        if rel is None:
            self.out.detail(f"sync: skipping {shown(event.path)}", level=2)
            return
        name = shown(str(rel))
        if event.ops & {"REMOVE", "RENAME"}:
            if not self._may_remove(rel):
                self.out.detail(f"sync: keeping {name} (not written by this sync, or changed here since)")
                return
            try:
                if remove_file(self.root, rel):
                    self.written.pop(rel.as_posix(), None)
                    self.out.info(f"sync: removed {name}")
            except (OSError, SyncRefused) as exc:
                self.out.warning(f"sync: cannot remove {name}: {getattr(exc, 'strerror', None) or exc}")
        elif event.ops & {"CREATE", "WRITE"}:
            await self._fetch(event.path, rel, name)
        self.handled += 1

    async def _fetch(self, pod_path: str, rel: PurePosixPath, name: str) -> None:
        if not self._may_overwrite(rel):
            self.out.warning(f"sync: not overwriting {name}: it changed here since the session started")
            return
        argv = self.kubectl.exec_argv(self.pod, self.container, ["head", "-c", str(MAX_SYNC_BYTES + 1), "--", pod_path])
        code, data, err = await self.kubectl.run(argv)
        if code != 0:
            self.out.detail(f"sync: cannot read {name}: {shown(err.strip()) or f'exit code {code}'}")
            return
        if len(data) > MAX_SYNC_BYTES:
            self.out.warning(f"sync: not syncing {name}: larger than {MAX_SYNC_BYTES} bytes")
            return
        try:
            await asyncio.to_thread(write_file, self.root, rel, data)
        except (OSError, SyncRefused) as exc:
            self.out.warning(f"sync: cannot write {name}: {getattr(exc, 'strerror', None) or exc}")
            return
        state = local_state(self.root.joinpath(*rel.parts))
        if state is not None:
            self.written[rel.as_posix()] = state
        self.out.info(f"sync: updated {name}")
