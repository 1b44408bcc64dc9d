"""Parse the seed API reference (tests/data/substratus-api-reference.txt, a copy of the user contract).

`seed_types()` returns {type name: [(json field name, seed type string), ...]} for every type that has a
field table; enum-like types (GPUType) have an empty list.
"""

from __future__ import annotations

import re
from pathlib import Path

SEED = Path(__file__).parent / "data" / "substratus-api-reference.txt"
_TYPE_LINE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_HEADERS = {"Resources", "Types"}


def seed_types() -> dict[str, list[tuple[str, str]]]:
    lines = SEED.read_text().splitlines()
    types: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    in_table = False
    for i, raw in enumerate(lines):
        line = raw.strip()
        if _TYPE_LINE.match(line) and not (line in _HEADERS and i < 6):
            current, in_table = line, False
            types.setdefault(current, [])
            continue
        if line == "---|---|":
            in_table = True
            continue
        if in_table and current and " |" in line:
            name, rest = line.split(" ", 1)
            types[current].append((name, rest.split(" |", 1)[0].strip()))
        elif in_table:
            in_table = False
    return types
