"""Plumbing shared by the plugins: durations, verbosity flags, usage errors, output."""

from __future__ import annotations

import io

import pytest

from substratus_controller.plugins.commandline import (
    EXIT_USAGE,
    Output,
    UsageError,
    format_duration,
    new_parser,
    normalise_verbosity,
    parse_duration,
    report,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400), ("300ms", 0.3), ("0", 0),
     ("2m3s", 123), ("+10s", 10), ("1us", 1e-6), ("1µs", 1e-6), ("100ns", 1e-7), (".5s", 0.5), ("20m", 1200)],
)  # fmt: skip
def test_kubectl_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [("90", "missing unit"), ("", "invalid duration"), ("5 m", "invalid duration"), ("1d", "invalid duration"),
     ("-5m", "must not be negative"), ("m", "invalid duration"), ("1h5", "invalid duration")],
)  # fmt: skip
def test_bad_durations_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(1200, "20m"), (90, "1m30s"), (5400, "1h30m"), (0.5, "0.5s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_kubectl_style_verbosity_flags() -> None:
    assert normalise_verbosity(["-v=3", "x", "--v=1", "-v"]) == ["-v", "-v", "-v", "x", "-v", "-v"]
    assert normalise_verbosity(["--", "-v=2"]) == ["--", "-v=2"]


def test_usage_errors_are_one_line_with_exit_code_2() -> None:
    parser = new_parser("kubectl thing", "does things", "  kubectl thing\n")
    parser.add_argument("--count", type=int)
    with pytest.raises(UsageError) as info:
        parser.parse_args(["--count", "x"])
    assert info.value.exit_code == EXIT_USAGE
    assert "see 'kubectl thing --help'" in str(info.value)
    assert "\n" not in str(info.value)


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    parser = new_parser("kubectl thing", "does things", "  kubectl thing -f x.yaml\n")
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--help"])
    assert info.value.code == 0
    assert "Examples:\n  kubectl thing -f x.yaml" in capsys.readouterr().out


def test_output_streams_and_verbosity() -> None:
    out, err = io.StringIO(), io.StringIO()
    o = Output(0, out=out, err=err, tty=False)
    o.result("model.substratus.ai/x serverside-applied")
    o.info("status")
    o.detail("only with -v")
    assert report(o, UsageError("bad flag")) == EXIT_USAGE
    assert out.getvalue() == "model.substratus.ai/x serverside-applied\n"
    assert err.getvalue() == "status\nerror: bad flag\n"
    o.verbosity = 1
    o.detail("now shown")
    assert err.getvalue().endswith("now shown\n")


def test_messages_on_stderr_never_carry_a_signed_url() -> None:
    err = io.StringIO()
    Output(0, out=io.StringIO(), err=err, tty=False).error("PUT http://h/upload/x?md5=a&expires=1&sig=deadbeef failed")
    assert "deadbeef" not in err.getvalue()


def test_progress_bars_only_on_a_terminal() -> None:
    err = io.StringIO()
    with Output(0, out=io.StringIO(), err=err, tty=False).progress("packing", 10) as advance:
        advance(10)
    assert err.getvalue() == ""
    tty_err = io.StringIO()
    with Output(0, out=io.StringIO(), err=tty_err, tty=True).progress("packing", 10) as advance:
        advance(5)
        advance(5)
