"""A tiny deterministic "language model": word-bigram counts plus a question->answer memory.

It stands in for real weights so that the reference workloads have something to import, train and serve
without GPUs, downloads or third-party packages. Invariants:
- Text is normalized the same way everywhere (`normalize`): lower-case, punctuation stripped, whitespace
  collapsed; tokens are the words of the normalized text.
- `Counts` maps a word to the words seen right after it with their (possibly fractional) counts.
- Serialization is stable: `to_json` sorts keys and rounds counts to 6 decimals, so equal models give equal
  bytes and `dir_sha256` of a model directory changes exactly when its content does.
- `complete` is a pure function of (model, prompt, max_tokens): a memorized answer when the normalized prompt
  is a known question, else a greedy continuation (highest count, ties broken alphabetically).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "substratus-bigram-v1"

Counts = dict[str, dict[str, float]]

_PUNCTUATION = re.compile(r"[^\w\s]")


@dataclass
class Model:
    """Bigram counts and the memorized answers, keyed by normalized question."""

    bigrams: Counts = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """What `complete` produced: the text, its length in words and why it stopped ("stop" or "length")."""

    text: str
    tokens: int
    finish_reason: str


def normalize(text: str) -> str:
    """Lower-case, punctuation stripped, whitespace collapsed: "Who wrote  Hamlet?" -> "who wrote hamlet"."""
    return " ".join(_PUNCTUATION.sub("", text.lower()).split())


def tokens(text: str) -> list[str]:
    """The words of the normalized text."""
    return normalize(text).split()


def count_bigrams(texts: Iterable[str]) -> Counts:
    """Bigram counts of each text (pairs never span two texts)."""
    counts: Counts = {}
    for text in texts:
        words = tokens(text)
        for first, second in itertools.pairwise(words):
            followers = counts.setdefault(first, {})
            followers[second] = followers.get(second, 0) + 1
    return counts


def merge(base: Counts, extra: Counts, scale: float = 1.0) -> Counts:
    """A new `base + scale * extra` (neither argument is modified)."""
    merged = {word: dict(followers) for word, followers in base.items()}
    for word, followers in extra.items():
        target = merged.setdefault(word, {})
        for follower, count in followers.items():
            target[follower] = target.get(follower, 0) + scale * count
    return merged


def to_json(model: Model) -> str:
    """The stable JSON form of `model` (sorted keys, counts rounded to 6 decimals, integral counts as ints)."""
    bigrams = {
        word: {follower: _stable_number(count) for follower, count in followers.items()}
        for word, followers in model.bigrams.items()
    }
    document = {"format": FORMAT, "bigrams": bigrams, "answers": model.answers}
    return json.dumps(document, sort_keys=True, indent=1) + "\n"


def from_json(text: str) -> Model:
    """Parse `to_json` output; raises ValueError when it is not a model of this format."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} model")
    bigrams, answers = document.get("bigrams"), document.get("answers")
    if not isinstance(bigrams, dict) or not all(_is_followers(value) for value in bigrams.values()):
        raise ValueError("model 'bigrams' must map words to {word: count} objects")
    if not isinstance(answers, dict) or not all(isinstance(value, str) for value in answers.values()):
        raise ValueError("model 'answers' must map questions to strings")
    return Model(bigrams=bigrams, answers=answers)


def save(model: Model, directory: Path) -> Path:
    """Write `directory/model.json`; returns its path."""
    path = directory / "model.json"
    path.write_text(to_json(model), encoding="utf-8")
    return path


def load(directory: str | Path) -> Model:
    """Read `directory/model.json` (e.g. `load("/content/model")` in a notebook)."""
    return from_json((Path(directory) / "model.json").read_text(encoding="utf-8"))


def dir_sha256(directory: Path) -> str:
    """sha256 over every file under `directory`: relative paths (sorted) and contents."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return digest.hexdigest()


def complete(model: Model, prompt: str, max_tokens: int = 16) -> Completion:
    """The memorized answer to `prompt`, else a greedy continuation from its last known word (see module doc)."""
    answer = model.answers.get(normalize(prompt))
    if answer is not None:
        words = answer.split()
        if len(words) > max_tokens:
            return Completion(" ".join(words[:max_tokens]), max_tokens, "length")
        return Completion(answer, len(words), "stop")

    known = [word for word in tokens(prompt) if model.bigrams.get(word)]
    word = known[-1] if known else None
    output: list[str] = []
    while word is not None and model.bigrams.get(word):
        if len(output) == max_tokens:
            return Completion(" ".join(output), len(output), "length")
        word = min(model.bigrams[word].items(), key=_greedy_rank)[0]
        output.append(word)
    return Completion(" ".join(output), len(output), "stop")


def _greedy_rank(item: tuple[str, float]) -> tuple[float, str]:
    """Sort key for (follower, count): highest count first, then alphabetical."""
    follower, count = item
    return -count, follower


def _stable_number(count: float) -> float | int:
    rounded = round(count, 6)
    return int(rounded) if rounded == int(rounded) else rounded


def _is_followers(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(count, int | float) and not isinstance(count, bool) for count in value.values()
    )
