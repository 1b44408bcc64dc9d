"""Golden files: every rendered child of every case equals `expected.yaml` (UPDATE_GOLDEN=1 rewrites them).

Review changes to the golden files as diffs: they are the exact bodies the controller applies.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
import yaml

from substratus_controller import yamlio

from .golden import GOLDEN, case_dirs, case_id, render_case

CASES = case_dirs()
EXPECTED_CASES = {
    "dataset": {"plain", "git-build", "upload-build", "params", "env-secrets", "gpu", "long-name"},
    "model": {"import", "trained-with-base-and-dataset", "gpu-l4", "git-build-branch", "upload-build"},
    "notebook": {"plain", "with-model-and-dataset", "with-pvc", "custom-command"},
    "server": {"plain", "gpu", "git-build"},
}


def test_all_cases_present() -> None:
    found: dict[str, set[str]] = {}
    for case in CASES:
        found.setdefault(case.parent.name, set()).add(case.name)
    assert found == EXPECTED_CASES, f"golden cases under {GOLDEN}"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_golden(case: Path) -> None:
    children, _ = render_case(case)
    text = yamlio.dump_all(children)
    expected_file = case / "expected.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_file.write_text(text)
    assert expected_file.exists(), f"{expected_file} missing: run with UPDATE_GOLDEN=1 and review the diff"
    expected_text = expected_file.read_text()
    expected = list(yaml.safe_load_all(expected_text))
    actual = list(yaml.safe_load_all(text))
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected_text.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=str(expected_file),
                tofile="rendered",
            )
        )
        pytest.fail(f"rendered children differ from {expected_file} (UPDATE_GOLDEN=1 to accept):\n{diff}")


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_render_is_deterministic(case: Path) -> None:
    first, _ = render_case(case)
    second, _ = render_case(case)
    assert first == second
