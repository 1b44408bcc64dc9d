"""The golden-file check shared by every golden test: compare, or rewrite with UPDATE_GOLDEN=1.

A produced text matches its golden file when both parse to the same YAML documents; on a mismatch the test
fails with a unified diff of the texts, so changes are reviewed as diffs.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
import yaml


def updating() -> bool:
    return os.environ.get("UPDATE_GOLDEN") == "1"


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
