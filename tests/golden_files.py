"""The golden-file check shared by every golden test: compare, or rewrite with UPDATE_GOLDEN=1.

A produced text matches its golden file when both parse to the same YAML documents; on a mismatch the test
fails with a unified diff of the texts, so changes are reviewed as diffs.

In CI (`CI` or `SUBSTRATUS_CI` set; .ci/run sets the latter) UPDATE_GOLDEN=1 is refused: every golden test
fails instead of rewriting, so a golden check there can only compare (.ci/run also fails on a tree the tests
changed).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
import yaml


def in_ci() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("SUBSTRATUS_CI"))


def updating() -> bool:
    if os.environ.get("UPDATE_GOLDEN") != "1":
        return False
    if in_ci():
        pytest.fail("UPDATE_GOLDEN=1 is refused in CI: golden files are only compared there")
    return True


def check_golden(text: str, expected_file: Path, *, what: str) -> None:
    """Fail unless `text` equals `expected_file` (as YAML); with UPDATE_GOLDEN=1 write it first."""
    if updating():
        expected_file.parent.mkdir(parents=True, exist_ok=True)
        expected_file.write_text(text)
    assert expected_file.exists(), f"{expected_file} missing: run with UPDATE_GOLDEN=1 and review the diff"
    expected_text = expected_file.read_text()
    if list(yaml.safe_load_all(text)) != list(yaml.safe_load_all(expected_text)):
        diff = "".join(
            difflib.unified_diff(
                expected_text.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=str(expected_file),
                tofile="produced",
            )
        )
        pytest.fail(f"{what} differs from {expected_file} (UPDATE_GOLDEN=1 to accept):\n{diff}")
