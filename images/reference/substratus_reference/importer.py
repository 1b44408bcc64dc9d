"""Model importer: `python3 -m substratus_reference.importer`.

Params: `name` (required, a Hugging Face style id such as `facebook/opt-125m`), `revision` (default `main`).

There is no network, so the "download" generates a small deterministic base model: bigram counts of the
base text shipped in the image (`/usr/local/share/substratus/base-text.txt`, or `$SUBSTRATUS_BASE_TEXT`)
plus the counts of a subset of its sentences chosen by a generator seeded with name and revision, so
different names give different models. Like `huggingface_hub` it writes the snapshot into the hub cache
first (`$HF_HOME/hub/models--<org>--<name>/snapshots/<revision>/{config.json,model.json}`), then copies it
into `artifacts/`. config.json is `{"name", "revision", "kind": "base", "format", "vocabulary",
"base_text_sha256"}`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

from . import contract, lm

BASE_TEXT_ENV = "SUBSTRATUS_BASE_TEXT"
DEFAULT_BASE_TEXT = "/usr/local/share/substratus/base-text.txt"
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def base_model(text: str, name: str, revision: str) -> lm.Model:
    """Counts of all of `text` plus those of a (name, revision)-seeded half of its sentences."""
    sentences = [sentence for sentence in re.split(r"(?<=[.!?])\s+", text) if sentence.strip()]
    seed = int.from_bytes(hashlib.sha256(f"{name}@{revision}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    subset = [sentence for sentence in sentences if rng.random() < 0.5]
    return lm.Model(bigrams=lm.merge(lm.count_bigrams(sentences), lm.count_bigrams(subset)))


def main() -> None:
    """Generate the base model into the HF hub cache, then copy the snapshot into the artifacts dir."""
    params = contract.params()
    name = contract.str_param(params, "name")
    revision = contract.str_param(params, "revision", default="main")
    if not _REPO_ID.fullmatch(name):
        raise contract.ContractError(f"param 'name' must look like 'org/model' or 'model', got {name!r}")
    if not _REVISION.fullmatch(revision):
        raise contract.ContractError(f"param 'revision' must be a branch, tag or commit name, got {revision!r}")

    base_text_path = Path(os.environ.get(BASE_TEXT_ENV) or DEFAULT_BASE_TEXT)
    base_text = base_text_path.read_text(encoding="utf-8")
    model = base_model(base_text, name, revision)
    config = {
        "name": name,
        "revision": revision,
        "kind": "base",
        "format": lm.FORMAT,
        "vocabulary": len(set(lm.tokens(base_text))),
        "base_text_sha256": hashlib.sha256(base_text.encode()).hexdigest(),
    }

    repo_dir = contract.hf_home() / "hub" / ("models--" + name.replace("/", "--"))
    snapshot = contract.ensure_cache_dir(repo_dir / "snapshots" / revision, "model cache directory")
    (snapshot / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    lm.save(model, snapshot)
    contract.log(f"downloaded {name}@{revision} into {snapshot}")

    artifacts = contract.artifacts_dir()
    for file in ("config.json", "model.json"):
        shutil.copyfile(snapshot / file, artifacts / file)
    contract.log(f"imported {name}@{revision} into {artifacts} (sha256 {lm.dir_sha256(artifacts)})")


if __name__ == "__main__":
    contract.run(main)
