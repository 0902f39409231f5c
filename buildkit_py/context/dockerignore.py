""".dockerignore: which files of the build context COPY and ADD may see.

Reading follows moby/patternmatcher's ``ignorefile.ReadAll``, matching its ``PatternMatcher.MatchesOrParentMatches``
(what BuildKit's context walk in fsutil amounts to): patterns apply in file order, the last one that matches a path
or any of its parent directories wins, and ``!pattern`` makes an exception.

As with BuildKit, the rules do not protect the Dockerfile or the ignore file: the frontend reads those directly, so
excluding them only hides them from COPY and ADD. ``<Dockerfile>.dockerignore`` next to the Dockerfile replaces the
context's ``.dockerignore``; the two are never merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ..errors import ContextError
from ..gostring import go_clean, go_trim_space

__all__ = [
    "IgnoreRules",
    "MatchType",
    "compile_pattern",
    "load_ignore_rules",
    "parse_ignore_file",
    "read_patterns",
]

IGNORE_FILE_NAME = ".dockerignore"

# Characters patternmatcher escapes because they mean something to a regexp but nothing to filepath.Match.
_ESCAPED_LITERALLY = frozenset(".+()|{}$")
# After "\" Go's regexp knows these escapes, and Python's re reads them the same way.
_SHARED_REGEX_ESCAPES = frozenset("dDsSwWbBAntrfva")
# A character of an exception pattern that means it may reach into any directory (fsutil's patternChars).
_GLOB_CHARS = frozenset("*[]?^\\")


def read_patterns(text: str) -> list[str]:
    """ignorefile.ReadAll: the patterns of an ignore file, normalised but not yet checked."""
    patterns: list[str] = []
    for number, line in enumerate(text.split("\n")):
        line = line.removesuffix("\r")
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = go_trim_space(line)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = go_trim_space(pattern[1:])
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


# Patterns ---------------------------------------------------------------------------------------------------


def _check_syntax(pattern: str) -> None:
    """Reject what Go's filepath.Match rejects with ErrBadPattern (on a non-Windows system)."""
    bad = ContextError(f"invalid .dockerignore pattern {pattern!r}: syntax error in pattern")
    index = 0
    length = len(pattern)

    def class_char(position: int) -> int:
        # getEsc: one (possibly escaped) character of a class, which must not be the last of the pattern
        if position >= length or pattern[position] in "-]":
            raise bad
        if pattern[position] == "\\":
            position += 1
            if position >= length:
                raise bad
        position += 1
        if position >= length:
            raise bad
        return position

    while index < length:
        char = pattern[index]
        if char == "\\":
            if index + 1 >= length:
                raise bad
            index += 2
        elif char == "[":
            index += 1
            if index < length and pattern[index] == "^":
                index += 1
            ranges = 0
            while True:
                if index < length and pattern[index] == "]" and ranges > 0:
                    index += 1
                    break
                index = class_char(index)
                if pattern[index] == "-":
                    index = class_char(index + 1)
                ranges += 1
        else:
            index += 1


class MatchType(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEXP = "regexp"


def compile_pattern(pattern: str) -> tuple[MatchType, str]:
    """patternmatcher's Pattern.compile: how a cleaned pattern matches, and its regexp in Go's syntax."""
    regex = "^"
    kind = MatchType.EXACT
    index = 0
    iteration = 0
    length = len(pattern)
    while index < length:
        char = pattern[index]
        index += 1
        if char == "*":
            if index < length and pattern[index] == "*":
                index += 1
                if index < length and pattern[index] == "/":
                    index += 1
                if index >= length:
                    if kind is MatchType.EXACT:
                        kind = MatchType.PREFIX
                    else:
                        regex += ".*"
                        kind = MatchType.REGEXP
                else:
                    regex += "(.*/)?"
                    kind = MatchType.REGEXP
                if iteration == 0:
                    kind = MatchType.SUFFIX
            else:
                regex += "[^/]*"
                kind = MatchType.REGEXP
        elif char == "?":
            regex += "[^/]"
            kind = MatchType.REGEXP
        elif char in _ESCAPED_LITERALLY:
            regex += "\\" + char
        elif char == "\\":
            if index < length:
                regex += "\\" + pattern[index]
                index += 1
                kind = MatchType.REGEXP
            else:
                regex += "\\"
        elif char in "[]":
            regex += char
            kind = MatchType.REGEXP
        else:
            regex += char
        iteration += 1
    if kind is MatchType.REGEXP:
        regex += "$"
    return kind, regex


def _python_body(go_regex: str) -> str:
    """The body of a Go regexp from compile_pattern (without ^ and $) in Python's syntax."""
    body = go_regex[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            if following.isascii() and following.isalnum() and following not in _SHARED_REGEX_ESCAPES:
                out.append(re.escape(following))
            else:
                out.append(char + following)
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


@dataclass(frozen=True)
class _Pattern:
    exclusion: bool
    text: str  # cleaned, without "!"
    kind: MatchType
    # matches the path itself or one of its parent directories
    regex: re.Pattern[str] | None

    def matches_self_or_parent(self, path: str) -> bool:
        if self.kind is MatchType.EXACT:
            return path == self.text or path.startswith(self.text + "/")
        if self.kind is MatchType.PREFIX:
            return path.startswith(self.text[:-2])
        assert self.regex is not None
        return self.regex.match(path) is not None

    def without_trailing_glob(self) -> str:
        return self.text.removesuffix("/**").removesuffix("/*")

    def may_match_strictly_below(self, reldir: str) -> bool:
        """Whether this pattern may match some path beneath the directory `reldir` (cleaned, not the root) without
        matching `reldir` or one of its parents. False only when that is certain."""
        below = reldir + "/"
        if self.kind is MatchType.EXACT:
            return self.text.startswith(below)
        if self.kind is MatchType.PREFIX:
            prefix = self.text[:-2]
            return prefix.startswith(below) or below.startswith(prefix)
        if self.kind is MatchType.SUFFIX or "**" in self.text or "[" in self.text or "\\" in self.text:
            return True
        # Only `*`, `?` and literal characters, none of which matches "/": the pattern matches a path exactly when
        # it matches the path's ancestor (or the path) of as many components as it has. Beneath a directory at
        # least that deep, that ancestor is the directory's own, so the directory's answer holds for all of them.
        return self.text.count("/") > reldir.count("/")


_ANY_CHILD = "(?s:/.*)?\\Z"


def _build_pattern(raw: str) -> _Pattern | None:
    """patternmatcher.New for one pattern; None for one that is blank."""
    pattern = go_trim_space(raw)
    if not pattern:
        return None
    pattern = go_clean(pattern)
    exclusion = pattern.startswith("!")
    if exclusion:
        if len(pattern) == 1:
            raise ContextError('illegal exclusion pattern: "!"')
        pattern = pattern[1:]
    _check_syntax(pattern)
    kind, go_regex = compile_pattern(pattern)
    regex: re.Pattern[str] | None = None
    if kind is MatchType.SUFFIX:
        suffix = pattern[2:]
        alternatives = ["(?s:.*)" + re.escape(suffix)]
        if suffix.startswith("/"):
            alternatives.append(re.escape(suffix[1:]))  # "**/foo" also matches "foo"
        regex = re.compile("(?:" + "|".join(alternatives) + ")" + _ANY_CHILD)
    elif kind is MatchType.REGEXP:
        try:
            regex = re.compile("(?:" + _python_body(go_regex) + ")" + _ANY_CHILD)
        except re.error as error:
            raise ContextError(f"invalid .dockerignore pattern {raw!r}: {error}") from None
    return _Pattern(exclusion, pattern, kind, regex)


# Rules ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRules:
    """The patterns of one ignore file, in file order, as ``ignorefile.ReadAll`` returns them."""

    patterns: tuple[str, ...]
    _compiled: tuple[_Pattern, ...] = field(init=False, repr=False, compare=False)
    _prefix_exceptions_only: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(p for p in (_build_pattern(raw) for raw in self.patterns) if p is not None)
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(
            self,
            "_prefix_exceptions_only",
            not any(p.exclusion and _GLOB_CHARS.intersection(p.without_trailing_glob()) for p in compiled),
        )

    def excludes(self, relpath: str, is_dir: bool = False) -> bool:
        """Whether ``relpath`` ("/"-separated, relative to the context root) is left out of the context.

        ``is_dir`` does not change the answer: Docker cleans "dir/" to "dir", so a pattern matches files and
        directories alike; it is accepted so that callers walking a tree need not special-case directories.
        """
        path = go_clean(relpath)
        if path == ".":
            return False
        matched = False
        for pattern in self._compiled:
            if pattern.exclusion != matched:
                continue
            if pattern.matches_self_or_parent(path):
                matched = not pattern.exclusion
        return matched

    def may_descend(self, reldir: str) -> bool:
        """False when nothing under ``reldir`` can be in the context, so a walk may skip the directory.

        The pruning rule of BuildKit's fsutil: an excluded directory is still walked when some exception, with a
        trailing "/*" or "/**" removed, lies beneath it, or when some exception has a wildcard that could reach
        anywhere.
        """
        path = go_clean(reldir)
        if path == "." or not self.excludes(path, is_dir=True):
            return True
        exceptions = [p for p in self._compiled if p.exclusion]
        if not exceptions:
            return False
        if not self._prefix_exceptions_only:
            return True
        prefix = path + "/"
        return any((p.without_trailing_glob() + "/").startswith(prefix) for p in exceptions)

    def includes_all_below(self, reldir: str) -> bool:
        """True when nothing beneath the directory `reldir` is excluded: `reldir` itself is not, and no pattern can
        match beneath it unless it matches `reldir` (`*.tmp`, `build/`, `docs/*.md` cannot, beneath `src`). A walk
        of it then needs no more matching."""
        path = go_clean(reldir)
        if path == ".":
            return not self._compiled
        if self.excludes(path):
            return False
        return not any(p.may_match_strictly_below(path) and not p.matches_self_or_parent(path) for p in self._compiled)

    def __bool__(self) -> bool:
        return bool(self._compiled)


def parse_ignore_file(text: str) -> IgnoreRules:
    """The rules of an ignore file's text; a bad pattern raises ContextError."""
    return IgnoreRules(tuple(read_patterns(text)))


def load_ignore_rules(context_dir: Path, dockerfile_path: Path | None) -> IgnoreRules:
    """The rules for a build: ``<Dockerfile>.dockerignore`` if it exists, else the context's ``.dockerignore``."""
    candidates = []
    if dockerfile_path is not None:
        candidates.append(dockerfile_path.with_name(dockerfile_path.name + IGNORE_FILE_NAME))
    candidates.append(context_dir / IGNORE_FILE_NAME)
    for candidate in candidates:
        if candidate.is_file():
            try:
                text = candidate.read_bytes().decode("utf-8", errors="surrogateescape")
            except OSError as error:
                raise ContextError(f"failed to read {candidate}: {error}") from error
            try:
                return parse_ignore_file(text)
            except ContextError as error:
                raise ContextError(f"failed parsing {candidate}: {error}") from None
    return IgnoreRules(())
