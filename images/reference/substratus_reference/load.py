"""Dataset loader: `python3 -m substratus_reference.load`.

Params: `name` (required: a corpus shipped in the image, e.g. `squad`), `limit` (optional int > 0: keep
the first N rows).

Like a Hugging Face loader it first "downloads" the corpus into the HF cache
(`$HF_HOME/datasets/<name>/data.jsonl`; the corpora ship in the image under
`/usr/local/share/substratus/corpora`, or `$SUBSTRATUS_CORPORA_DIR`, because there is no network), then
writes `artifacts/data.jsonl` (one row per line, keys sorted) and `artifacts/manifest.json`
(`{"name", "rows", "sha256"}`, the sha256 of data.jsonl). An unknown name exits 2 listing the corpora.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from . import contract

CORPORA_DIR_ENV = "SUBSTRATUS_CORPORA_DIR"
DEFAULT_CORPORA_DIR = "/usr/local/share/substratus/corpora"
ROW_KEYS = ("id", "title", "context", "question", "answers")


def corpora_dir() -> Path:
    """Where the shipped corpora are: `/usr/local/share/substratus/corpora` or `$SUBSTRATUS_CORPORA_DIR`."""
    return Path(os.environ.get(CORPORA_DIR_ENV) or DEFAULT_CORPORA_DIR)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL corpus, each checked to have the SQuAD-style keys (ContractError otherwise)."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise contract.ContractError(f"{path} line {number} is not JSON: {exc}") from exc
        missing = [key for key in ROW_KEYS if not isinstance(row, dict) or key not in row]
        if missing:
            raise contract.ContractError(f"{path} line {number} lacks {', '.join(missing)}")
        if not isinstance(row["answers"], list) or not all(isinstance(answer, str) for answer in row["answers"]):
            raise contract.ContractError(f"{path} line {number}: 'answers' must be a list of strings")
        rows.append(row)
    return rows


def main() -> None:
    """Load the corpus named by the params into the HF cache, then into the artifacts dir."""
    params = contract.params()
    name = contract.str_param(params, "name")
    limit = contract.int_param(params, "limit", None, minimum=1)

    available = sorted(path.stem for path in corpora_dir().glob("*.jsonl"))
    if name not in available:
        raise contract.ContractError(
            f"unknown corpus {name!r}; available corpora: {', '.join(available) or 'none'} (in {corpora_dir()})"
        )

    cached = contract.ensure_cache_dir(contract.hf_home() / "datasets" / name, "dataset cache directory")
    shutil.copyfile(corpora_dir() / f"{name}.jsonl", cached / "data.jsonl")
    contract.log(f"downloaded {name} into {cached}")

    rows = read_rows(cached / "data.jsonl")
    if limit is not None:
        rows = rows[:limit]

    artifacts = contract.artifacts_dir()
    data = "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows).encode()
    (artifacts / "data.jsonl").write_bytes(data)
    manifest = {"name": name, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}
    (artifacts / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    contract.log(f"wrote {len(rows)} rows to {artifacts / 'data.jsonl'} (sha256 {manifest['sha256']})")


if __name__ == "__main__":
    contract.run(main)
