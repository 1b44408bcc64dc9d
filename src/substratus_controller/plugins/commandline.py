"""What both kubectl plugins share: errors and exit codes, the argument parser, durations, output.

Conventions (kubectl's):
- Exit codes: 0 success, 1 failure, 2 usage error (bad flags or arguments), 130 interrupted before anything
  was changed in the cluster.
- Every error is one line on stderr starting with `error: ` and naming its cause; usage errors add where to
  find the help on the same line.
- Output: results on stdout (`model.substratus.ai/x serverside-applied`, the notebook URL); progress and
  status lines on stderr. Quiet by default: `-v` (or `-v=N`) adds detail. Progress bars (rich) only when
  stderr is a terminal; otherwise nothing but plain lines.
- Durations are Go/kubectl durations (`90s`, `5m`, `1h30m`, `1.5h`); `0` means no limit.
- Nothing printed here ever holds a signed URL (errors are passed through `redact`).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import IO, NoReturn

from substratus_controller.runtime.redact import redact

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class PluginError(Exception):
    """A failure to report as `error: <message>` with exit code `exit_code`."""

    exit_code = EXIT_FAILURE


class UsageError(PluginError):
    exit_code = EXIT_USAGE


# ------------------------------------------------------------------------------------------------ durations
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_HINT = "use e.g. 90s, 5m or 1h"


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`300ms`, `90s`, `5m`, `1h30m`, `1.5h`); `0` alone needs no unit.

    Raises ValueError naming the problem; negative durations are refused."""
    s = text.strip()
    if s.startswith("-"):
        raise ValueError(f"invalid duration {text!r}: must not be negative")
    s = s.removeprefix("+")
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r} ({_HINT})")
    if re.fullmatch(r"\d+(?:\.\d*)?", s):
        raise ValueError(f"invalid duration {text!r}: missing unit ({_HINT})")
    total, pos = 0.0, 0
    while pos < len(s):
        m = _TERM.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r} ({_HINT})")
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """The short form used in messages: `20m`, `90s`, `1h30m`."""
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def duration_arg(text: str) -> float:
    """argparse `type=` for --timeout."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ------------------------------------------------------------------------------------------------ arguments
class Parser(argparse.ArgumentParser):
    """argparse with kubectl's error convention: one `error:` line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see '{self.prog} --help'")


def new_parser(prog: str, description: str, examples: str) -> Parser:
    return Parser(
        prog=prog,
        description=textwrap.fill(description, 100),
        epilog=f"Examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """-n, --kubeconfig, --context, -v: the flags every kubectl command has."""
    a = parser.add_argument
    a("-n", "--namespace", help="the namespace (default: the object's, else the kubeconfig context's, else default)")
    a("--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    a("--context", help="the kubeconfig context to use (default: the current context)")
    a("-v", "--verbose", action="count", default=0, help="print more detail (repeat, or -v=N, for more)")


def normalise_verbosity(argv: Sequence[str]) -> list[str]:
    """Accept kubectl's `-v=N` / `--v=N` / `--verbose=N` by expanding them into N `-v` flags."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        m = re.fullmatch(r"(?:-v|--v|--verbose)=(\d+)", arg)
        if m:
            out.extend(["-v"] * int(m[1]))
        elif arg == "--":
            out.extend(argv[i:])
            break
        else:
            out.append(arg)
    return out


# ------------------------------------------------------------------------------------------------ output
Advance = Callable[[int], None]


class Output:
    """Where the plugins write: results to stdout, status to stderr, detail only with -v, bars only on a TTY."""

    def __init__(
        self, verbosity: int = 0, *, out: IO[str] | None = None, err: IO[str] | None = None, tty: bool | None = None
    ) -> None:
        self.verbosity = verbosity
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.tty = self.err.isatty() if tty is None else tty

    def result(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def info(self, message: str) -> None:
        print(redact(message), file=self.err, flush=True)

    def detail(self, message: str, level: int = 1) -> None:
        if self.verbosity >= level:
            self.info(message)

    def warning(self, message: str) -> None:
        self.info(f"warning: {message}")

    def error(self, message: str) -> None:
        self.info(f"error: {message}")

    @contextlib.contextmanager
    def progress(self, description: str, total: int, *, unit_bytes: bool = True) -> Iterator[Advance]:
        """A progress bar on a TTY (rich, removed when done); elsewhere a no-op callable."""
        if not self.tty:
            yield lambda _n: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn("{task.description}"), BarColumn()]
        if unit_bytes:
            columns += [DownloadColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=Console(file=self.err), transient=True) as bar:
            task = bar.add_task(description, total=total or None)
            yield lambda n: bar.advance(task, n)


def report(out: Output, exc: BaseException) -> int:
    """Print an error the kubectl way and return its exit code."""
    if isinstance(exc, PluginError):
        out.error(str(exc))
        return exc.exit_code
    out.error(f"{type(exc).__name__}: {exc}")
    return EXIT_FAILURE
