"""The `# fmt: skip` rule: a marker stays only where ruff would spread its statement over more than
`BUDGET` extra lines (a compact call or signature that reads better on one or two lines).

    hack/fmt_skip.py --check   fail, naming each marker that does not earn its place (make lint)
    hack/fmt_skip.py --fix     remove those markers and format the statements
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = ROOT / ".venv" / "bin" / "ruff"
BUDGET = 2  # extra lines a formatted statement may take before a marker is worth keeping
MARKER = re.compile(r"\s*# fmt: skip$")
DIRS = ("src", "tests", "e2e", "bench", "hack")


def formatted(text: str, path: Path) -> str | None:
    """`text` as ruff formats it (None when it does not parse)."""
    run = subprocess.run([str(RUFF), "format", "--stdin-filename", str(path), "-"], input=text,
                         capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    return run.stdout if run.returncode == 0 else None


def idle_marker(lines: list[str], path: Path) -> int | None:
    """The index of the first marker whose removal costs at most BUDGET lines, else None."""
    for i, line in enumerate(lines):
        if not MARKER.search(line.rstrip()):
            continue
        candidate = [*lines[:i], MARKER.sub("", line.rstrip()), *lines[i + 1 :]]
        out = formatted("\n".join(candidate), path)
        if out is not None and len(out.split("\n")) - len(lines) <= BUDGET:
            return i
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--fix", action="store_true")
    args = parser.parse_args()
    idle: list[str] = []
    for path in sorted(p for d in DIRS for p in (ROOT / d).rglob("*.py")):
        text = path.read_text()
        if "# fmt: skip" not in text:
            continue
        lines = text.split("\n")
        while (i := idle_marker(lines, path)) is not None:
            if args.check:
                idle.append(f"{path.relative_to(ROOT)}:{i + 1}: `# fmt: skip` saves {BUDGET} lines or fewer")
                break
            out = formatted("\n".join([*lines[:i], MARKER.sub("", lines[i].rstrip()), *lines[i + 1 :]]), path)
            assert out is not None
            lines = out.split("\n")
        if args.fix:
            path.write_text("\n".join(lines))
    for line in idle:
        print(line)
    return 1 if idle else 0


if __name__ == "__main__":
    sys.exit(main())
