"""Golden files: every rendered child of every case equals `expected.yaml` (UPDATE_GOLDEN=1 rewrites them).

Review changes to the golden files as diffs: they are the exact bodies the controller applies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from substratus_controller import yamlio
from tests.golden_files import check_golden

from .golden import GOLDEN, case_dirs, case_id, render_case

CASES = case_dirs()
EXPECTED_CASES = {
    "dataset": {"plain", "git-build", "upload-build", "params", "env-secrets", "gpu", "long-name"},
    "model": {
        "import",
        "trained-with-base-and-dataset",
        "gpu-l4",
        "git-build-branch",
        "upload-build",
        "kaniko-git-build-local",
        "buildah-git-build-path",
        "buildah-upload-build-local",
    },
    "notebook": {"plain", "with-model-and-dataset", "with-pvc", "custom-command", "network-policy"},
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
    check_golden(text, case / "expected.yaml", what="rendered children")


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_render_is_deterministic(case: Path) -> None:
    first, _ = render_case(case)
    second, _ = render_case(case)
    assert first == second
