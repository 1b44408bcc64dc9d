"""Model trainer: `python3 -m substratus_reference.train`.

Reads the base model from `/content/model/` (config.json + model.json) and the dataset from
`/content/data/` (data.jsonl, checked against the sha256 in manifest.json). Params: `epochs` (int >= 1,
default 1), `learning_rate` (positive number, default 1.0; a string such as "0.5" is fine, since the operator's
params are ints or strings), `batch_size` (int >= 1, optional: accepted and recorded only).

Training is `counts = base + epochs * learning_rate * dataset counts`, where the dataset counts are the
bigrams of every row's question, context and answers, added once per epoch; the QA memory maps each row's
normalized question to its first answer. Like a real trainer it keeps a tokenizer cache under
`$XDG_CACHE_HOME` and writes a checkpoint per epoch to `$TMPDIR`. Outputs, in `artifacts/`:
`config.json` (`{"name": <base>-finetuned, "base", "kind": "trained", "format"}`), `model.json` and
`training.json` (`{"epochs", "learning_rate", "batch_size", "dataset_sha256", "base_model_sha256", "rows",
"params"}`), so the output changes whenever the dataset, the base model or the params do.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from . import contract, lm
from .load import read_rows


def read_base_model(directory: Path) -> tuple[dict[str, Any], lm.Model]:
    """The base model's config and weights; a missing or invalid model is a bad-input ContractError."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise contract.ContractError(f"no base model in {directory} ({config_path.name} missing): set spec.model")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        model = lm.load(directory)
    except (OSError, ValueError) as exc:
        raise contract.ContractError(f"invalid base model in {directory}: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise contract.ContractError(f"invalid base model in {directory}: config.json has no 'name'")
    return config, model


def read_dataset(directory: Path) -> tuple[str, list[dict[str, Any]]]:
    """The dataset's sha256 and rows; missing files or a sha256 different from the manifest are errors."""
    data_path, manifest_path = directory / "data.jsonl", directory / "manifest.json"
    for path in (data_path, manifest_path):
        if not path.is_file():
            raise contract.ContractError(f"no dataset in {directory} ({path.name} missing): set spec.dataset")
    sha256 = hashlib.sha256(data_path.read_bytes()).hexdigest()
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise contract.ContractError(f"invalid {manifest_path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("sha256") != sha256:
        raise contract.ContractError(f"{data_path} does not match the sha256 in {manifest_path}")
    return sha256, read_rows(data_path)


def tokenizer_cache(base: lm.Model, base_sha256: str) -> Path:
    """The base model's vocabulary, cached under `$XDG_CACHE_HOME` by base model sha256 (built once)."""
    directory = contract.ensure_cache_dir(contract.cache_dir() / "substratus-reference" / "tokenizer", "cache")
    path = directory / f"{base_sha256}.json"
    if not path.exists():
        vocabulary = sorted(set(base.bigrams) | {word for followers in base.bigrams.values() for word in followers})
        path.write_text(json.dumps(vocabulary) + "\n", encoding="utf-8")
    return path


def main() -> None:
    """Fine-tune the mounted base model on the mounted dataset and write the result into the artifacts dir."""
    params = contract.params()
    epochs = contract.int_param(params, "epochs", 1, minimum=1)
    learning_rate = contract.float_param(params, "learning_rate", 1.0)
    batch_size = contract.int_param(params, "batch_size", None, minimum=1)

    base_config, base = read_base_model(contract.model_dir())
    base_sha256 = lm.dir_sha256(contract.model_dir())
    dataset_sha256, rows = read_dataset(contract.data_dir())
    contract.log(f"training {base_config['name']} on {len(rows)} rows: epochs={epochs} learning_rate={learning_rate}")

    vocabulary = json.loads(tokenizer_cache(base, base_sha256).read_text(encoding="utf-8"))
    texts = [text for row in rows for text in (row["question"], row["context"], *row["answers"])]
    dataset_counts = lm.count_bigrams(texts)
    new_words = {word for text in texts for word in lm.tokens(text)} - set(vocabulary)

    trained = lm.Model(bigrams=base.bigrams, answers=dict(base.answers))
    with tempfile.TemporaryDirectory(prefix="substratus-train-") as checkpoints:
        for epoch in range(1, epochs + 1):
            trained.bigrams = lm.merge(trained.bigrams, dataset_counts, learning_rate)
            checkpoint = Path(checkpoints) / f"epoch-{epoch}.json"
            checkpoint.write_text(lm.to_json(trained), encoding="utf-8")
            contract.log(f"epoch {epoch}/{epochs}: {len(trained.bigrams)} words, checkpoint {checkpoint}")
    trained.answers.update({lm.normalize(row["question"]): row["answers"][0] for row in rows if row["answers"]})
    contract.log(f"memorized {len(trained.answers)} answers; {len(new_words)} words new to the base vocabulary")

    artifacts = contract.artifacts_dir()
    name = f"{base_config['name']}-finetuned"
    config = {"name": name, "base": base_config["name"], "kind": "trained", "format": lm.FORMAT}
    training = {
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "dataset_sha256": dataset_sha256,
        "base_model_sha256": base_sha256,
        "rows": len(rows),
        "params": params,
    }
    (artifacts / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (artifacts / "training.json").write_text(json.dumps(training, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    lm.save(trained, artifacts)
    contract.log(f"wrote {name} to {artifacts} (sha256 {lm.dir_sha256(artifacts)})")


if __name__ == "__main__":
    contract.run(main)
