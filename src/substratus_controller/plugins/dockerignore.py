"""`.dockerignore` with Docker's semantics (its ignore-file reader and moby/patternmatcher), written anew.

Reading (`read_patterns`):
- A line starting with `#` is a comment (only in the first column); other lines are trimmed; empty lines
  are skipped; a UTF-8 byte-order mark on the first line is ignored.
- `!` makes an exception (a re-inclusion); the rest of the line is trimmed again.
- Each pattern is cleaned like Go's `filepath.Clean` (`./a//b/` -> `a/b`, `a/../b` -> `b`) and one leading
  `/` is dropped, so `/foo` and `foo` both mean `foo` at the root of the context. A lone `!` is an error.

Matching (`Matcher.excluded(path)`, paths relative to the context, `/`-separated):
- `*` is any run of characters except `/`; `?` is one character except `/`; `[...]` is a character class
  (`[a-z]`, `[^a]`); `\\` makes the next character literal; `**` is any number of directories, including none
  (`**/*.go` matches `a.go` and `x/y/a.go`; a trailing `dir/**` matches everything below `dir`).
- A pattern also matches everything below a directory it matches (`build` excludes `build/x/y`).
- Patterns are applied in order and the last one that matches decides: `*.md` then `!README.md` keeps
  README.md. Unlike .gitignore, an exception can re-include a file inside an excluded directory
  (`data` then `!data/keep.txt` sends `data/keep.txt`).
- The pattern optimisations Docker uses (a leading `**` with no other wildcard is a suffix test, a trailing
  `**` with none before it a prefix test) are kept, because they are its observable behaviour
  (`**foo` matches `barfoo`).

Walking (`Matcher.may_reinclude_below(dir)`): an excluded directory is entered only when an exception could
match something below it; the answer errs on the side of walking (a wildcard it cannot rule out means yes),
and every file is then judged by `excluded`, so the result is the same as checking each path on its own.

Docker still sends the Dockerfile and `.dockerignore` to the builder when they are excluded (the builder
needs them; `COPY`/`ADD` do not copy them). The tarball does the same: see tarball.py.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class DockerignoreError(ValueError):
    """A pattern Docker would refuse."""


class _Match(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEXP = "regexp"


_ESCAPE = set(".+()|{}$")


def clean(path: str) -> str:
    """Go's `path.Clean` for `/`-separated paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, as Docker's reader returns them (see module docstring)."""
    patterns: list[str] = []
    for number, raw in enumerate(text.splitlines()):
        line = raw.removeprefix("\ufeff") if number == 0 else raw
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append(f"!{pattern}" if invert else pattern)
    return patterns


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern; `text` is the cleaned pattern without its `!`."""

    text: str
    exclusion: bool
    kind: _Match
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, text: str, exclusion: bool = False) -> Pattern:
        kind, source = _translate(text)
        regex = None
        if kind is _Match.REGEXP:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" for `[[`
                    regex = re.compile(source + r"\Z", re.DOTALL)
            except re.error as exc:
                raise DockerignoreError(f"invalid .dockerignore pattern {text!r}: {exc}") from None
        return cls(text, exclusion, kind, regex)

    def matches(self, path: str) -> bool:
        if self.kind is _Match.EXACT:
            return path == self.text
        if self.kind is _Match.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind is _Match.SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


def _translate(pattern: str) -> tuple[_Match, str]:
    """Docker's pattern -> (match type, regular expression) translation."""
    out = "^"
    kind = _Match.EXACT
    pos, n, token = 0, len(pattern), 0
    while pos < n:
        ch = pattern[pos]
        pos += 1
        if ch == "*":
            if pos < n and pattern[pos] == "*":
                pos += 1
                if pos < n and pattern[pos] == "/":
                    pos += 1
                if pos == n:
                    if kind is _Match.EXACT:
                        kind = _Match.PREFIX
                    else:
                        out += ".*"
                        kind = _Match.REGEXP
                else:
                    out += "(.*/)?"
                    kind = _Match.REGEXP
                if token == 0:
                    kind = _Match.SUFFIX
            else:
                out += "[^/]*"
                kind = _Match.REGEXP
        elif ch == "?":
            out += "[^/]"
            kind = _Match.REGEXP
        elif ch in _ESCAPE:
            out += "\\" + ch
        elif ch == "\\":
            if pos < n:
                out += re.escape(pattern[pos])
                pos += 1
                kind = _Match.REGEXP
            else:
                out += "\\\\"
        elif ch in "[]":
            out += ch
            kind = _Match.REGEXP
        else:
            out += ch
        token += 1
    return kind, out


class Matcher:
    """The patterns of one .dockerignore (see module docstring)."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = clean(raw.strip()) if raw.strip() else ""
            if not text:
                continue
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise DockerignoreError('illegal exclusion pattern: "!"')
                text = text[1:]
            self.patterns.append(Pattern.compile(text, exclusion))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_text(cls, text: str) -> Matcher:
        return cls(read_patterns(text))

    @classmethod
    def for_context(cls, directory: Path) -> Matcher:
        """The matcher of `directory/.dockerignore` (none: nothing is excluded)."""
        path = directory / ".dockerignore"
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return cls()
        return cls.from_text(text)

    def excluded(self, path: str) -> bool:
        """Whether `path` (relative, `/`-separated) is left out of the build context."""
        path = clean(path)
        if path == ".":
            return False
        parent = path.rpartition("/")[0] or "."
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # an inclusion cannot change a match, nor an exception a non-match
            hit = pattern.matches(path)
            if not hit and parent != ".":
                hit = any(pattern.matches("/".join(parent_dirs[: i + 1])) for i in range(len(parent_dirs)))
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_reinclude_below(self, directory: str) -> bool:
        """Whether an exception (`!pattern`) could match a path below the excluded `directory`."""
        parts = clean(directory).split("/")
        return any(_could_match_below(p.text, parts) for p in self.patterns if p.exclusion)


def _could_match_below(pattern: str, dir_parts: list[str]) -> bool:
    segments = pattern.split("/")
    for i, part in enumerate(dir_parts):
        if i >= len(segments):
            return True  # the pattern matches an ancestor, hence (as a parent) everything below it
        segment = segments[i]
        if "**" in segment or "\\" in segment:
            return True
        try:
            if not Pattern.compile(segment).matches(part):
                return False
        except DockerignoreError:
            return True
    return True
