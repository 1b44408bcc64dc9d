"""`.dockerignore` reading and matching, checked against Docker's documented and observable behaviour."""

from __future__ import annotations

import pytest

from substratus_controller.plugins.dockerignore import DockerignoreError, Matcher, clean, read_patterns


def excluded(patterns: str, path: str) -> bool:
    return Matcher.from_text(patterns).excluded(path)


# ------------------------------------------------------------------------------------------------ reading
def test_comments_blank_lines_and_whitespace() -> None:
    text = "# a comment\n\n   \n  *.pyc  \n #not a comment (not in column 1)\n"
    assert read_patterns(text) == ["*.pyc", "#not a comment (not in column 1)"]


def test_byte_order_mark_on_the_first_line_is_ignored() -> None:
    assert read_patterns("\ufeff# comment\nfoo\n") == ["foo"]


def test_leading_slash_and_cleaning() -> None:
    assert read_patterns("/foo\n./bar/\na//b/../c\n/\n") == ["foo", "bar", "a/c", "/"]


def test_negation_is_trimmed_and_cleaned() -> None:
    assert read_patterns("!  /keep/me/ \n") == ["!keep/me"]


def test_a_lone_exclamation_mark_is_refused() -> None:
    with pytest.raises(DockerignoreError, match="illegal exclusion pattern"):
        Matcher.from_text("!\n")


def test_a_malformed_character_class_is_refused() -> None:
    with pytest.raises(DockerignoreError, match=r"invalid \.dockerignore pattern"):
        Matcher.from_text("[a-\n")


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("", "."), ("a/./b", "a/b"), ("a/../../b", "../b"), ("/../a", "/a"), ("a/b/", "a/b"), ("//a", "/a")],
)
def test_clean_is_go_path_clean(raw: str, cleaned: str) -> None:
    assert clean(raw) == cleaned


# ------------------------------------------------------------------------------------------------ matching
@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        ("foo", "foo", True),
        ("foo", "foo/bar/baz", True),  # a directory excludes everything below it
        ("foo", "x/foo", False),  # patterns are anchored at the context root
        ("/foo", "foo", True),
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),  # * does not cross /
        ("*/*.md", "docs/README.md", True),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[a-c].txt", "b.txt", True),
        ("[a-c].txt", "d.txt", False),
        ("[^a].txt", "a.txt", False),
        ("[^a].txt", "b.txt", True),
        ("**/*.go", "a.go", True),  # ** matches zero directories too
        ("**/*.go", "x/y/a.go", True),
        ("**/node_modules", "node_modules", True),
        ("**/node_modules", "web/app/node_modules/lib/x.js", True),
        ("build/**", "build/x/y", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/c", False),
        ("**foo", "barfoo", True),  # Docker's suffix shortcut: a leading ** without other wildcards
        ("foo**", "foobar", True),  # ... and its prefix shortcut for a trailing **
        ("**", "anything/at/all", True),
        ("a.b", "aXb", False),  # regexp characters are literal
        ("a+(b)", "a+(b)", True),
        ("a\\*b", "a*b", True),  # \ escapes the next character
        ("a\\*b", "axb", False),
        ("\\*.txt", "x.txt", False),
        (".", "anything", False),  # excluding the root excludes nothing
    ],
)
def test_patterns(patterns: str, path: str, expected: bool) -> None:
    assert excluded(patterns, path) is expected


def test_the_last_matching_pattern_wins() -> None:
    m = Matcher.from_text("*.md\n!README*.md\nREADME-secret.md\n")
    assert m.excluded("CHANGES.md")
    assert not m.excluded("README.md")
    assert m.excluded("README-secret.md")


def test_an_exception_reincludes_a_file_inside_an_excluded_directory() -> None:
    """Unlike .gitignore: Docker matches parents per pattern, so a later exception wins for the file."""
    m = Matcher.from_text("data\n!data/keep.txt\n")
    assert m.excluded("data")
    assert m.excluded("data/big.bin")
    assert not m.excluded("data/keep.txt")


def test_an_exception_for_a_directory_reincludes_its_contents() -> None:
    m = Matcher.from_text("*\n!src\n")
    assert m.excluded("README.md")
    assert not m.excluded("src")
    assert not m.excluded("src/pkg/mod.py")


def test_exceptions_before_the_exclusion_do_not_count() -> None:
    assert excluded("!keep.txt\n*.txt\n", "keep.txt")


def test_may_reinclude_below_only_where_an_exception_could_match() -> None:
    m = Matcher.from_text("data\nlogs\n!data/keep/*.txt\n")
    assert m.may_reinclude_below("data")
    assert m.may_reinclude_below("data/keep")
    assert not m.may_reinclude_below("logs")
    assert not m.may_reinclude_below("data/other")
    wild = Matcher.from_text("vendor\n!**/LICENSE\n")
    assert wild.may_reinclude_below("vendor")  # a ** could match anywhere: walk
    assert not Matcher.from_text("vendor\n").may_reinclude_below("vendor")
