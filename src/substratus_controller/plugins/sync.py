"""Sync-back: files that change under /content in the notebook pod are copied to the local directory.

Pod side: `WATCHER`, a small Python program run through `kubectl exec ... -- python3 -c WATCHER /content`
(the notebook image has python3; no tool has to be copied into the pod). It polls the tree every second and
prints one JSON line per change, `{"path": "/content/src/a.py", "op": "WRITE"}`, with op `CREATE`, `WRITE`
or `REMOVE` (nbwatch's names, docs/upstream-behaviour.md §7.4). It skips `data/`, `model/`, `artifacts/` and
`params.json` at the top (what the operator mounts there), every dot-file and dot-directory (`.git`,
`.ipynb_checkpoints`, Jupyter's temporary files), symlinks and anything that is not a regular file. Files that exist
when it starts are the baseline and are not reported, except those modified since `since` (the pod's start): a
file saved between the pod's start and the watcher's start is still synced.

Client side (`Syncer`): for CREATE/WRITE the file is read with `kubectl exec ... -- cat -- PATH` and
written next to its target then renamed into place; REMOVE (and RENAME) deletes the local copy and then the
directories that removal left empty (never the root). Sync is one-way (pod -> local): local edits are
overwritten by later pod changes, as upstream. Paths are checked again locally: only paths below /content,
never with `..`, dot components or the skipped top-level directories, so a pod cannot write outside DIR.
Ops may be `|`-joined (fsnotify style); unknown ops are ignored. The exec is supervised like port-forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from substratus_controller.constants import CONTAINER_NOTEBOOK, CONTENT_DIR

from .commandline import Output
from .kubectl import Kubectl, Run, run_child, supervise

SKIPPED_TOP = frozenset({"data", "model", "artifacts", "params.json"})
POLL_SECONDS = 1.0

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
    if not parts or parts[0] in SKIPPED_TOP:
        return None
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    return rel


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
    """Write `data` to root/rel atomically (temporary file in the same directory, then rename)."""
    target = root.joinpath(*rel.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        raise IsADirectoryError(f"{rel} is a directory locally")
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
    """Delete root/rel (a file or symlink) and the parent directories that became empty; True if removed."""
    target = root.joinpath(*rel.parts)
    if not target.is_symlink() and not target.is_file():
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
            finally:
                self.queue.task_done()

    async def handle(self, line: str) -> None:
        """Apply one watcher line to the local directory."""
        event = parse_event(line)
        if event is None:
            if line.strip():
                self.out.detail(f"sync: ignoring {line.strip()[:200]!r}")
            return
        rel = relative_path(event.path)
        if rel is None:
            self.out.detail(f"sync: skipping {event.path}", level=2)
            return
        if event.ops & {"REMOVE", "RENAME"}:
            try:
                if remove_file(self.root, rel):
                    self.out.info(f"sync: removed {rel}")
            except OSError as exc:
                self.out.warning(f"sync: cannot remove {rel}: {exc.strerror or exc}")
        elif event.ops & {"CREATE", "WRITE"}:
            argv = self.kubectl.exec_argv(self.pod, self.container, ["cat", "--", event.path])
            code, data, err = await self.kubectl.run(argv)
            if code != 0:
                self.out.detail(f"sync: cannot read {event.path}: {err.strip() or f'exit code {code}'}")
                return
            try:
                await asyncio.to_thread(write_file, self.root, rel, data)
            except OSError as exc:
                self.out.warning(f"sync: cannot write {rel}: {exc.strerror or exc}")
                return
            self.out.info(f"sync: updated {rel}")
        self.handled += 1
