"""Sync-back: the watcher that runs in the pod, and how its events land in the local directory."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from substratus_controller.plugins import sync
from substratus_controller.plugins.commandline import Output
from substratus_controller.plugins.kubectl import Kubectl
from substratus_controller.plugins.sync import (
    MAX_SYNC_BYTES,
    WATCHER,
    Syncer,
    parse_event,
    relative_path,
    remove_file,
    watcher_command,
    write_file,
)


@pytest.mark.parametrize(
    ("pod_path", "expected"),
    [
        ("/content/a.py", "a.py"),
        ("/content/src/pkg/m.py", "src/pkg/m.py"),
        ("/content/data/x.csv", None),
        ("/content/model/weights.bin", None),
        ("/content/artifacts/out.txt", None),
        ("/content/src/data/ok.csv", "src/data/ok.csv"),  # only the top-level mounts are skipped
        ("/content/.git/config", None),
        ("/content/src/.ipynb_checkpoints/a-checkpoint.ipynb", None),
        ("/content/.~notebook.ipynb", None),
        ("/content/../etc/passwd", None),
        ("/content/a/../../x", None),
        ("/etc/passwd", None),
        ("/content", None),
        ("/contents/x", None),
    ],
)
def test_which_paths_are_synced(pod_path: str, expected: str | None) -> None:
    rel = relative_path(pod_path)
    assert (str(rel) if rel is not None else None) == expected


def test_parse_event() -> None:
    event = parse_event('{"path": "/content/a", "op": "CREATE|WRITE"}')
    assert event is not None
    assert event.ops == {"CREATE", "WRITE"}
    assert parse_event("not json") is None
    assert parse_event('{"path": 1, "op": "WRITE"}') is None


def test_write_file_creates_parents_and_replaces(tmp_path: Path) -> None:
    write_file(tmp_path, PurePosixPath("a/b/c.txt"), b"one")
    write_file(tmp_path, PurePosixPath("a/b/c.txt"), b"two")
    assert (tmp_path / "a/b/c.txt").read_bytes() == b"two"
    assert [p.name for p in (tmp_path / "a/b").iterdir()] == ["c.txt"], "no temporary files left"
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        write_file(tmp_path, PurePosixPath("d"), b"x")


def test_remove_file_prunes_empty_directories_but_never_the_root(tmp_path: Path) -> None:
    write_file(tmp_path, PurePosixPath("a/b/c.txt"), b"x")
    write_file(tmp_path, PurePosixPath("a/keep.txt"), b"x")
    assert remove_file(tmp_path, PurePosixPath("a/b/c.txt"))
    assert not (tmp_path / "a/b").exists()
    assert (tmp_path / "a/keep.txt").exists()
    assert remove_file(tmp_path, PurePosixPath("a/keep.txt"))
    assert tmp_path.exists()
    assert not (tmp_path / "a").exists()
    assert not remove_file(tmp_path, PurePosixPath("missing.txt"))


def read_events(proc: subprocess.Popen[str], count: int, timeout: float = 10.0) -> list[dict[str, str]]:
    assert proc.stdout is not None
    events: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            events.append(json.loads(line))
    return events


def test_the_watcher_reports_changes_and_skips_what_it_should(tmp_path: Path) -> None:
    """The pod-side program itself, run here with this interpreter against a temporary /content."""
    root = tmp_path / "content"
    for rel in ("old.py", "src/keep.py", "data/d.csv"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("v1")
    proc = subprocess.Popen([sys.executable, "-c", WATCHER, str(root), "0.05"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # the baseline: existing files are not reported
        (root / "new.py").write_text("new")
        (root / "src/keep.py").write_text("v2, longer")
        (root / "old.py").unlink()
        (root / "data/ignored.csv").write_text("x")
        (root / ".hidden").write_text("x")
        (root / ".ipynb_checkpoints").mkdir()
        (root / ".ipynb_checkpoints/a.ipynb").write_text("x")
        (root / "link.py").symlink_to(root / "new.py")
        events = read_events(proc, 3)
        time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(5)
    assert sorted((e["op"], e["path"]) for e in events) == [
        ("CREATE", f"{root}/new.py"),
        ("REMOVE", f"{root}/old.py"),
        ("WRITE", f"{root}/src/keep.py"),
    ]
    assert watcher_command() == ["python3", "-c", WATCHER, "/content"]
    assert watcher_command(since=12.5) == ["python3", "-c", WATCHER, "/content", "1", "12.500"]


class ScriptedKubectl(Kubectl):
    """Answers `exec ... -- cat -- PATH` from a dict instead of a pod (unit test stand-in)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__("ns", binary="kubectl")
        self.files = files
        self.calls: list[list[str]] = []

    async def run(self, argv: Sequence[str], timeout: float = 300.0) -> tuple[int, bytes, str]:
        self.calls.append(list(argv))
        path = argv[-1]
        if path in self.files:
            return 0, self.files[path], ""
        return 1, b"", f"cat: {path}: No such file or directory"


async def test_syncer_mirrors_events(tmp_path: Path) -> None:
    kubectl = ScriptedKubectl({"/content/src/a.py": b"A = 2\n", "/content/b.txt": b"b"})
    err = io.StringIO()
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone/old.txt").write_text("x")
    syncer = Syncer(kubectl, "nb-notebook", tmp_path, Output(0, out=io.StringIO(), err=err, tty=False))
    for line in [
        '{"path": "/content/src/a.py", "op": "CREATE"}',
        '{"path": "/content/b.txt", "op": "WRITE"}',
        '{"path": "/content/gone/old.txt", "op": "REMOVE"}',  # never written by this sync: kept
        '{"path": "/content/b.txt", "op": "REMOVE"}',  # written by this sync, unchanged since: removed
        '{"path": "/content/data/x", "op": "CREATE"}',
        '{"path": "/content/vanished.txt", "op": "WRITE"}',
        "garbage",
    ]:
        await syncer.handle(line)
    assert (tmp_path / "src/a.py").read_bytes() == b"A = 2\n"
    assert not (tmp_path / "b.txt").exists()
    assert (tmp_path / "gone/old.txt").read_text() == "x"
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "vanished.txt").exists()
    assert kubectl.calls[0] == ["kubectl", "exec", "-n", "ns", "nb-notebook", "-c", "notebook", "--", "head", "-c",
                                str(MAX_SYNC_BYTES + 1), "--", "/content/src/a.py"]  # fmt: skip
    assert err.getvalue().splitlines() == [
        "sync: updated src/a.py",
        "sync: updated b.txt",
        "sync: removed b.txt",
    ]


# ---------------------------------------------------------------------- the laptop does not trust the pod
@pytest.mark.parametrize(
    "pod_path",
    [
        "/content/a\x00b",
        "/content/\x1b[31mred",
        "/content/a\\..\\..\\x",
        "/content/C:/Windows/x",
        "/content/line\nbreak",
        "/content/Dockerfile",
    ],
)
def test_names_that_must_never_be_synced(pod_path: str) -> None:
    """Security model (README): NUL, control characters, Windows separators and drives, and the build's Dockerfile."""
    assert relative_path(pod_path) is None


def syncer_for(root: Path, files: dict[str, bytes], verbosity: int = 0) -> tuple[Syncer, io.StringIO]:
    err = io.StringIO()
    return Syncer(
        ScriptedKubectl(files), "nb-notebook", root, Output(verbosity, out=io.StringIO(), err=err, tty=False)
    ), err


async def test_no_symlink_is_ever_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "dir", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("mine")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file.py").symlink_to(outside / "secret.txt")
    syncer, err = syncer_for(root, {"/content/link/new.py": b"evil", "/content/file.py": b"evil"})
    await syncer.handle('{"path": "/content/link/new.py", "op": "CREATE"}')
    await syncer.handle('{"path": "/content/file.py", "op": "WRITE"}')
    await syncer.handle('{"path": "/content/link/secret.txt", "op": "REMOVE"}')
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "mine"
    assert "symbolic link" in err.getvalue()


async def test_a_file_changed_here_is_neither_overwritten_nor_removed(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("local")
    syncer, err = syncer_for(tmp_path, {"/content/mine.py": b"pod", "/content/new.py": b"pod"})
    (tmp_path / "mine.py").write_text("edited here after the session started")
    await syncer.handle('{"path": "/content/mine.py", "op": "WRITE"}')
    assert (tmp_path / "mine.py").read_text() == "edited here after the session started"
    assert "not overwriting mine.py" in err.getvalue()
    await syncer.handle('{"path": "/content/new.py", "op": "CREATE"}')
    (tmp_path / "new.py").write_text("edited here too")
    await syncer.handle('{"path": "/content/new.py", "op": "REMOVE"}')
    assert (tmp_path / "new.py").read_text() == "edited here too"


async def test_an_unchanged_file_of_the_session_start_is_updated(tmp_path: Path) -> None:
    (tmp_path / "nb.ipynb").write_text("uploaded")
    syncer, _ = syncer_for(tmp_path, {"/content/nb.ipynb": b"edited in jupyter"})
    await syncer.handle('{"path": "/content/nb.ipynb", "op": "WRITE"}')
    assert (tmp_path / "nb.ipynb").read_text() == "edited in jupyter"


async def test_a_transfer_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "MAX_SYNC_BYTES", 10)
    syncer, err = syncer_for(tmp_path, {"/content/big.bin": b"x" * 11})
    await syncer.handle('{"path": "/content/big.bin", "op": "CREATE"}')
    assert not (tmp_path / "big.bin").exists()
    assert "larger than 10 bytes" in err.getvalue()


async def test_printed_names_are_escaped_and_a_bad_entry_does_not_stop_the_sync(tmp_path: Path) -> None:
    syncer, err = syncer_for(tmp_path, {"/content/ok.py": b"ok"}, verbosity=2)
    await syncer.handle(json.dumps({"path": "/content/\x1b]0;pwned\x07", "op": "CREATE"}))
    assert "\x1b" not in err.getvalue()
    assert "\\x1b" in err.getvalue()
    worker = asyncio.create_task(syncer._work())
    syncer.queue.put_nowait(json.dumps({"path": "/content/boom.py", "op": "CREATE"}))
    syncer.queue.put_nowait('{"path": "/content/ok.py", "op": "CREATE"}')
    syncer.kubectl.run = _exploding(syncer.kubectl.run)  # type: ignore[method-assign]
    await asyncio.wait_for(syncer.queue.join(), 5)
    worker.cancel()
    assert (tmp_path / "ok.py").read_bytes() == b"ok"
    assert "skipping an entry" in err.getvalue()


def _exploding(run: Any) -> Any:
    async def wrapped(argv: Sequence[str], timeout: float = 300.0) -> tuple[int, bytes, str]:
        if argv[-1] == "/content/boom.py":
            raise ValueError("embedded null byte")
        result: tuple[int, bytes, str] = await run(argv, timeout)
        return result

    return wrapped


def test_the_watcher_reports_files_saved_since_the_pod_started(tmp_path: Path) -> None:
    """A file saved after the pod started but before the watcher did is still synced; older ones are not."""
    root = tmp_path / "content"
    root.mkdir()
    (root / "from-image.ipynb").write_text("old")
    os.utime(root / "from-image.ipynb", (1000.0, 1000.0))
    (root / "saved-early.txt").write_text("new")
    (root / "params.json").write_text("{}")  # mounted by the operator: never synced
    since = time.time() - 5
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHER, str(root), "0.05", f"{since:.3f}"], stdout=subprocess.PIPE, text=True
    )
    try:
        events = read_events(proc, 1)
        time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(5)
    assert [(e["op"], e["path"]) for e in events] == [("CREATE", f"{root}/saved-early.txt")]
