"""Dockerfile word expansion with the semantics of BuildKit's shell lexer (frontend/dockerfile/shell/lex.go).

A word is parsed with the lark grammar in ``shell.lark`` and the tree is evaluated against an environment:

    $VAR ${VAR}                       value, empty when unset
    ${VAR:-w} ${VAR-w}                w when VAR is unset (or, with ":", empty)
    ${VAR:+w} ${VAR+w}                w when VAR is set (and, with ":", not empty)
    ${VAR:?msg} ${VAR?msg}            an ExpansionError "VAR: msg" when VAR is unset (or, with ":", empty)
    ${VAR#p} ${VAR##p}                remove the shortest / longest prefix matching the pattern p
    ${VAR%p} ${VAR%%p}                remove the shortest / longest suffix matching p
    ${VAR/p/r} ${VAR//p/r}            replace the first / every match of p with r

Patterns know ``*``, ``?`` and ``\\`` escapes of ``*``, ``?``, ``\\``; like BuildKit, ``[...]`` is literal text.
Single quotes keep everything; inside double quotes the escape token escapes only ``"``, ``$`` and itself.

Two limits BuildKit does not have, each an ExpansionError: ``${`` nested more than MAX_NESTING (64) deep, and a word
whose expansion grows past MAX_EXPANDED_LENGTH (1 MiB of text; Linux passes at most 128 KiB in one environment
string to a RUN anyway), so ``ENV A=${A}${A}`` repeated stops at once instead of doubling for minutes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..gostring import GO_SPACES

if TYPE_CHECKING:
    from .shell_eval import Expansion

__all__ = ["MAX_EXPANDED_LENGTH", "MAX_NESTING", "ShellLexer", "expand_word"]

# Go's unicode.IsSpace; str.isspace() also accepts \x1c-\x1f, which Go does not split on.
_GO_SPACE_RUN = re.compile("[" + re.escape("".join(sorted(GO_SPACES))) + "]+")
MAX_NESTING = 64
MAX_EXPANDED_LENGTH = 1 << 20


class ShellLexer:
    """Expands Dockerfile words like BuildKit's ``shell.Lex``.

    The keyword options mirror the fields of ``shell.Lex`` that BuildKit's frontend sets for special cases:
    ``raw_quotes`` keeps quote characters, ``raw_escapes`` keeps escape tokens, ``skip_unset_env`` leaves
    references to unset variables as written, ``process_quotes=False`` treats quotes as plain characters.
    """

    def __init__(
        self,
        escape_token: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset_env: bool = False,
        process_quotes: bool = True,
    ) -> None:
        if len(escape_token) != 1:
            raise ValueError(f"escape token must be one character, not {escape_token!r}")
        self.escape_token = escape_token
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.process_quotes = process_quotes
        self._specials = ("$", escape_token, "'", '"') if process_quotes else ("$", escape_token)

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """One word: quotes removed, escapes and variables processed, whitespace kept."""
        return self.process_word_with_matches(word, env)[0]

    def process_word_with_matches(
        self, word: str, env: Mapping[str, str]
    ) -> tuple[str, frozenset[str], frozenset[str]]:
        """Like process_word, and also the names that were looked up and set, and those looked up but unset."""
        if self._is_plain(word):
            return word, frozenset(), frozenset()
        result, expansion = self._run(word, env, None)
        return result, expansion.matched, expansion.unmatched

    def process_words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """Expand, then split on whitespace that was neither quoted, escaped nor part of a ``<<`` heredoc marker."""
        if self._is_plain(text) and "<<" not in text:
            return [word for word in _GO_SPACE_RUN.split(text) if word]
        words: list[str] = []
        self._run(text, env, words)
        return words

    def _is_plain(self, word: str) -> bool:
        return not any(special in word for special in self._specials)

    def _run(self, word: str, env: Mapping[str, str], words: list[str] | None) -> tuple[str, Expansion]:
        from .shell_eval import expand  # the grammar and its parser load only when a word needs them

        return expand(self, word, env, words)


def expand_word(word: str, env: Mapping[str, str], escape_token: str = "\\") -> str:
    """Shorthand for ``ShellLexer(escape_token).process_word(word, env)``."""
    return ShellLexer(escape_token).process_word(word, env)
