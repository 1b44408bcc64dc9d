"""Docstrings and comments name only documents that are in the repository (fast tier, no cluster).

The project's specifications live under docs/ (decisions.md, upstream-behaviour.md, quality-targets.md);
a reference to one of them, or to README.md / bench/README.md, must resolve to a file in this checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("src", "tests", "e2e", "bench", "hack") for p in (ROOT / d).rglob("*.py")]
DOC = re.compile(r"(?<![\w/.-])((?:docs|bench)/[\w.-]+\.md)\b")
SPEC_NAMES = re.compile(r"(?<![\w/.-])(decisions|upstream-behaviour|quality-targets|architecture)\.md\b")


def test_referenced_documents_exist() -> None:
    missing = []
    for path in SOURCES:
        text = path.read_text()
        for match in DOC.finditer(text):
            if "dockerignore" in path.name or match.group(1) == "docs/README.md":
                continue  # file names used as test data, not references
            if not (ROOT / match.group(1)).is_file():
                missing.append(f"{path.relative_to(ROOT)}: {match.group(1)}")
    assert not missing, "references to documents not in the repository:\n" + "\n".join(missing)


def test_specifications_are_named_by_their_repository_path() -> None:
    bare = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in SOURCES
        if path.name != "test_doc_references.py"
        for m in SPEC_NAMES.finditer(path.read_text())
    ]
    assert not bare, "write docs/<name>.md, so a reader can find it:\n" + "\n".join(bare)
