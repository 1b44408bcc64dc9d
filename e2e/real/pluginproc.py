"""The kubectl plugins as child processes of the real-tier tests: a PATH on which kubectl finds them, and a
process whose output lines can be waited for."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path


class Plugin:
    """`kubectl notebook ...` as a child process; stdout lines collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            match = rx.search(line)
            if match:
                return match
        raise AssertionError(f"{rx.pattern!r} not printed within {timeout:g}s; output:\n" + "\n".join(self.seen))

    def drain(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "\n".join(self.seen)


@contextlib.contextmanager
def kubectl_on_path(binary: str, tmp: Path) -> Iterator[dict[str, str]]:
    """An environment whose PATH has `binary` as kubectl and the package's two plugins (kubectl finds
    `kubectl notebook` and `kubectl applybuild` there, as it would for a user)."""
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "kubectl").symlink_to(binary)
    for name in ("kubectl-notebook", "kubectl-applybuild"):
        plugin = shutil.which(name, path=str(Path(sys.executable).parent))
        assert plugin, f"{name} is not installed next to the test interpreter"
        (bindir / name).symlink_to(plugin)
    yield {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}
