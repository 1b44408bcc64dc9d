"""Running kubectl as a child process (port-forward and exec need the kubelet's streaming API).

The plugins are kubectl plugins, so kubectl is on PATH: it speaks SPDY/WebSocket streaming, honours every
kubeconfig auth plugin, and is what the user already trusts. `Kubectl` builds the command lines (the same
kubeconfig and context as the plugin, the namespace per command), starts children in the plugin's process
group (a Ctrl-C in the terminal reaches them too) and stops them by pid: SIGTERM, then SIGKILL after a grace
period. `supervise` restarts a long-running child that fails, up to `retries` times with backoff 1 s, 2 s,
4 s, ...; a child that stayed up for `healthy_after` seconds has its failure count reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from .commandline import PluginError

GRACE = 5.0


@dataclass
class Kubectl:
    namespace: str
    flags: list[str] = field(default_factory=list)  # --kubeconfig/--context, from the plugin's own flags
    binary: str = ""

    def __post_init__(self) -> None:
        if not self.binary:
            found = shutil.which("kubectl")
            if found is None:
                raise PluginError("kubectl was not found on PATH (port-forward and exec run through it)")
            self.binary = found

    def argv(self, command: str, *args: str) -> list[str]:
        return [self.binary, *self.flags, command, "-n", self.namespace, *args]

    def port_forward_argv(self, pod: str, local: int, remote: int) -> list[str]:
        return self.argv("port-forward", f"pod/{pod}", f"{local}:{remote}")

    def exec_argv(self, pod: str, container: str, command: Sequence[str]) -> list[str]:
        return self.argv("exec", pod, "-c", container, "--", *command)

    async def spawn(self, argv: Sequence[str]) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise PluginError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None

    async def run(self, argv: Sequence[str], timeout: float = 300.0) -> tuple[int, bytes, str]:
        """Run to completion: (exit code, stdout, stderr)."""
        proc = await self.spawn(argv)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            await stop_process(proc)
            return 1, b"", f"timed out after {timeout:g}s"
        except asyncio.CancelledError:
            await stop_process(proc)
            raise
        return proc.returncode or 0, out, err.decode(errors="replace")


async def stop_process(proc: asyncio.subprocess.Process, grace: float = GRACE) -> None:
    """SIGTERM, then SIGKILL if it is still there after `grace` seconds; reaps it."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def stoppable(aw: Awaitable[object], stop: asyncio.Event) -> bool:
    """Await `aw` unless `stop` is set first (then cancel it); True when stopped. Cancelling the caller
    cancels `aw` too."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise
    finally:
        stopper.cancel()
    if task.done():
        task.result()
        return False
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return True


async def sleep_or_stop(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep `seconds`; True (early) when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


Line = Callable[[str], None]


@dataclass
class Run:
    """What one run of a supervised child left behind."""

    returncode: int
    stderr: deque[str]
    uptime: float
    ready: bool


async def run_child(kubectl: Kubectl, argv: Sequence[str], stop: asyncio.Event, *, on_stdout: Line,
                    on_stderr: Line, ready_marker: str | None = None) -> Run | None:  # fmt: skip
    """Run `argv` until it exits (a Run) or `stop` is set (None); stdout/stderr are handed over line by line."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    proc = await kubectl.spawn(argv)
    tail: deque[str] = deque(maxlen=5)
    ready = False

    async def pump_stdout() -> None:
        nonlocal ready
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if ready_marker is not None and ready_marker in line:
                ready = True
            on_stdout(line)

    async def pump_stderr() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                tail.append(line)
                on_stderr(line)

    pumps = asyncio.gather(pump_stdout(), pump_stderr())
    try:
        stopped = await stoppable(asyncio.gather(pumps, proc.wait()), stop)
    finally:
        await stop_process(proc)
        pumps.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumps
    if stopped:
        return None
    return Run(proc.returncode or 0, tail, loop.time() - started, ready)


async def supervise(what: str, start: Callable[[], Awaitable[Run | None]], stop: asyncio.Event, *,
                    report: Line, retries: int = 3, healthy_after: float = 10.0) -> None:  # fmt: skip
    """Run `start` again whenever it ends, until `stop`; after `retries` quick failures, a PluginError."""
    failures = 0
    while not stop.is_set():
        run = await start()
        if run is None or stop.is_set():
            return
        if run.uptime >= healthy_after:
            failures = 0
        failures += 1
        why = run.stderr[-1] if run.stderr else f"exit code {run.returncode}"
        if failures > retries:
            raise PluginError(f"{what} failed {failures} times; last error: {why}")
        delay = 2.0 ** (failures - 1)
        report(f"{what} ended ({why}); retrying in {delay:g}s")
        if await sleep_or_stop(delay, stop):
            return
