"""Both commands' flags, usage errors and early failures (everything that happens before the cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from substratus_controller.plugins import applybuild, notebook
from substratus_controller.plugins.commandline import UsageError

MODEL = "apiVersion: substratus.ai/v1\nkind: Model\nmetadata:\n  name: m\n"


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text("current-context: c\ncontexts:\n- name: c\n  context: {cluster: c, user: u, namespace: team}\n")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def run(main: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    assert callable(main)
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: DIR, -f/--filename"),
        (["-f", "m.yaml"], "the following arguments are required: DIR"),
        (["-f", "m.yaml", "--timeout", "10", "."], "argument --timeout: invalid duration '10': missing unit"),
        (["-f", "m.yaml", "--bogus", "."], "unrecognized arguments: --bogus"),
    ],
)
def test_applybuild_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(applybuild.main, argv, capsys)
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {message}")
    assert err.endswith("see 'kubectl applybuild --help'\n")
    assert err.count("\n") == 1


def test_applybuild_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        applybuild.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: kubectl applybuild")
    assert "kubectl applybuild -f model.yaml ." in text


def test_applybuild_without_a_dockerfile_fails_before_connecting(
    tmp_path: Path, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.yaml").write_text(MODEL)
    (tmp_path / "ctx").mkdir()
    code, _, err = run(applybuild.main, ["-f", str(tmp_path / "m.yaml"), str(tmp_path / "ctx")], capsys)
    assert (code, err) == (1, f"error: {tmp_path / 'ctx'} does not contain a Dockerfile\n")


def test_applybuild_namespace_mismatch(tmp_path: Path, kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_text(MODEL + "  namespace: a\n")
    code, _, err = run(applybuild.main, ["-n", "b", "-f", str(tmp_path / "m.yaml"), str(tmp_path)], capsys)
    assert code == 1
    assert err.startswith('error: the namespace from the provided object "a" does not match the namespace "b".')


def test_applybuild_invalid_manifest_names_the_field(
    tmp_path: Path, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.yaml").write_text(MODEL + "spec:\n  resources: {cpu: many}\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    code, _, err = run(applybuild.main, ["-f", str(tmp_path / "m.yaml"), str(tmp_path)], capsys)
    assert code == 1
    assert "spec.resources.cpu: Input should be a valid integer" in err


def test_notebook_defaults() -> None:
    args = notebook.parser().parse_args(["nb"])
    notebook.check_args(args)
    assert (args.port, args.force_conflicts, args.timeout, args.sync, args.no_suspend) == (8888, True, 1200, False,
                                                                                           False)  # fmt: skip


def test_notebook_dir_implies_the_manifest_and_sync() -> None:
    args = notebook.parser().parse_args(["-d", "work"])
    notebook.check_args(args)
    assert (args.filename, args.sync) == (str(Path("work") / "notebook.yaml"), True)
    args = notebook.parser().parse_args(["-d", "work", "-f", "nb.yaml", "--no-sync"])
    notebook.check_args(args)
    assert (args.filename, args.sync) == ("nb.yaml", False)
    args = notebook.parser().parse_args(["-d", "work", "nb"])
    notebook.check_args(args)
    assert (args.name, args.filename, args.sync) == ("nb", None, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "a Notebook is needed: NAME, -f FILE or -d DIR"),
        (["nb", "-f", "x.yaml"], "give either NAME or -f FILE, not both"),
        (["nb", "--sync"], "--sync needs -d DIR"),
        (["nb", "--port", "99999"], "argument --port: invalid port '99999'"),
    ],
)
def test_notebook_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(notebook.main, argv, capsys)
    assert code == 2
    assert err.startswith(f"error: {message}")
    assert err.count("\n") == 1


def test_notebook_needs_a_notebook_manifest(
    tmp_path: Path, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.yaml").write_text(MODEL)
    code, _, err = run(notebook.main, ["-f", str(tmp_path / "m.yaml")], capsys)
    assert code == 1
    assert "kind: this command needs a Notebook, the manifest holds a Model" in err


def test_notebook_url_carries_the_token_quoted() -> None:
    assert notebook.notebook_url(8888, "abc-_123") == "http://localhost:8888/?token=abc-_123"
    assert notebook.notebook_url(9000, "a/b+c") == "http://localhost:9000/?token=a%2Fb%2Bc"


def test_check_args_raises_usage_errors() -> None:
    args = notebook.parser().parse_args([])
    with pytest.raises(UsageError):
        notebook.check_args(args)
