"""Child kubectl processes: command lines, supervision with retries and backoff, stopping."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import deque

import pytest

from substratus_controller.plugins import kubectl as kubectl_module
from substratus_controller.plugins.commandline import PluginError
from substratus_controller.plugins.kubectl import Kubectl, Run, run_child, stoppable, supervise


def test_command_lines() -> None:
    k = Kubectl("team-a", ["--kubeconfig", "/k", "--context", "c"], binary="/usr/bin/kubectl")
    assert k.port_forward_argv("nb-notebook", 8888, 8888) == [
        "/usr/bin/kubectl", "--kubeconfig", "/k", "--context", "c", "port-forward", "-n", "team-a", "pod/nb-notebook",
        "8888:8888",
    ]  # fmt: skip
    assert k.exec_argv("nb-notebook", "notebook", ["cat", "--", "/content/a"]) == [
        "/usr/bin/kubectl", "--kubeconfig", "/k", "--context", "c", "exec", "-n", "team-a", "nb-notebook", "-c",
        "notebook", "--", "cat", "--", "/content/a",
    ]  # fmt: skip


def test_kubectl_must_be_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PluginError, match="kubectl was not found on PATH"):
        Kubectl("ns")


async def test_supervise_retries_three_times_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []

    async def no_sleep(seconds: float, stop: asyncio.Event) -> bool:
        delays.append(seconds)
        return False

    monkeypatch.setattr(kubectl_module, "sleep_or_stop", no_sleep)
    starts = 0

    async def failing() -> Run:
        nonlocal starts
        starts += 1
        return Run(1, deque(["error: unable to listen on any of the requested ports"]), 0.1, False)

    reports: list[str] = []
    with pytest.raises(PluginError, match="port-forward failed 4 times; last error: error: unable to listen"):
        await supervise("port-forward", failing, asyncio.Event(), report=reports.append)
    assert starts == 4
    assert delays == [1, 2, 4]
    assert reports[0] == "port-forward ended (error: unable to listen on any of the requested ports); retrying in 1s"


async def test_a_child_that_was_up_for_a_while_starts_counting_again(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(seconds: float, stop: asyncio.Event) -> bool:
        return False

    monkeypatch.setattr(kubectl_module, "sleep_or_stop", no_sleep)
    stop = asyncio.Event()
    uptimes = iter([0.1, 0.1, 0.1, 60.0, 0.1, 0.1])
    runs = 0

    async def start() -> Run | None:
        nonlocal runs
        runs += 1
        try:
            return Run(1, deque(), next(uptimes), True)
        except StopIteration:
            stop.set()
            return None

    await supervise("x", start, stop, report=lambda _m: None)
    assert runs == 7, "the long run reset the failure count, so the retries never ran out"


async def test_run_child_hands_over_lines_and_reports_the_exit() -> None:
    k = Kubectl("ns", binary=sys.executable)
    code = (
        "import sys; print('Forwarding from 127.0.0.1:1 -> 2', flush=True); print('boom', file=sys.stderr); sys.exit(3)"
    )
    lines: list[str] = []
    errors: list[str] = []
    run = await run_child(k, [sys.executable, "-c", code], asyncio.Event(), on_stdout=lines.append,
                          on_stderr=errors.append, ready_marker="Forwarding from")  # fmt: skip
    assert run is not None
    assert (run.returncode, list(run.stderr), run.ready) == (3, ["boom"], True)
    assert lines == ["Forwarding from 127.0.0.1:1 -> 2"]
    assert errors == ["boom"]


async def test_stop_terminates_the_child() -> None:
    k = Kubectl("ns", binary=sys.executable)
    stop = asyncio.Event()
    pids: list[str] = []
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    task = asyncio.create_task(
        run_child(k, [sys.executable, "-c", code], stop, on_stdout=pids.append, on_stderr=lambda _l: None)
    )
    for _ in range(100):
        if pids:
            break
        await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(task, 10) is None
    with pytest.raises(ProcessLookupError):
        os.kill(int(pids[0]), 0)


async def test_stoppable() -> None:
    stop = asyncio.Event()

    async def value() -> int:
        return 1

    assert await stoppable(value(), stop) is False
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cancelled.set()

    stop.set()
    assert await stoppable(forever(), stop) is True
    assert cancelled.is_set()
    stop.clear()
    cancelled.clear()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await stoppable(forever(), stop)
    assert cancelled.is_set(), "cancelling the caller cancels the awaited work"
