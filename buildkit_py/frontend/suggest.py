"""BuildKit's "did you mean" suggestions (`util/suggest`): the closest option within an edit distance of 2."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["levenshtein", "suggestion", "with_suggestion"]

_MAX_DISTANCE = 3  # a match must be closer than this, as in BuildKit (and HCL)


def levenshtein(first: str, second: str) -> int:
    previous = list(range(len(second) + 1))
    for row, first_char in enumerate(first, start=1):
        current = [row]
        for column, second_char in enumerate(second, start=1):
            cost = 0 if first_char == second_char else 1
            current.append(min(previous[column] + 1, current[column - 1] + 1, previous[column - 1] + cost))
        previous = current
    return previous[-1]


def suggestion(value: str, options: Iterable[str], case_sensitive: bool = True) -> str:
    """The option closest to `value`, or "" when none is close or `value` is itself an option."""
    wanted = value if case_sensitive else value.lower()
    match = ""
    best = _MAX_DISTANCE
    for option in options:
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return ""
        distance = levenshtein(wanted, candidate)
        if distance < best:
            match, best = option, distance
    return match


def with_suggestion(message: str, value: str, options: Iterable[str], case_sensitive: bool = True) -> str:
    match = suggestion(value, options, case_sensitive)
    return f"{message} (did you mean {match}?)" if match else message
