"""Fast tier: a golden check in CI can only compare (issue 15 §3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden_files import check_golden


def test_update_golden_rewrites_outside_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    golden = tmp_path / "expected.yaml"
    golden.write_text("a: 1\n")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SUBSTRATUS_CI", raising=False)
    monkeypatch.setenv("UPDATE_GOLDEN", "1")
    check_golden("a: 2\n", golden, what="x")
    assert golden.read_text() == "a: 2\n"


@pytest.mark.parametrize("var", ["CI", "SUBSTRATUS_CI"])
def test_update_golden_is_refused_in_ci(var: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    golden = tmp_path / "expected.yaml"
    golden.write_text("a: 1\n")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SUBSTRATUS_CI", raising=False)
    monkeypatch.setenv(var, "1")
    monkeypatch.setenv("UPDATE_GOLDEN", "1")
    with pytest.raises(pytest.fail.Exception, match="refused in CI"):
        check_golden("a: 2\n", golden, what="x")
    assert golden.read_text() == "a: 1\n"
    monkeypatch.delenv("UPDATE_GOLDEN")
    with pytest.raises(pytest.fail.Exception, match="differs"):  # comparing still works, and fails on a change
        check_golden("a: 2\n", golden, what="x")
