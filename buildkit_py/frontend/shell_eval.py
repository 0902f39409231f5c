"""The grammar-driven half of word expansion (see shell.py): a word with a ``$``, a quote or an escape token is parsed
with the lark grammar in ``shell.lark`` and its tree evaluated against the environment."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedEOF, UnexpectedInput

from ..errors import ExpansionError
from ..gostring import GO_SPACES, go_quote
from .shell import MAX_EXPANDED_LENGTH, MAX_NESTING

if TYPE_CHECKING:
    from .shell import ShellLexer


@dataclass(frozen=True)
class Expansion:
    """The names an expansion looked up and found set, and those it looked up and found unset."""

    matched: frozenset[str]
    unmatched: frozenset[str]


def expand(lexer: ShellLexer, word: str, env: Mapping[str, str], words: list[str] | None) -> tuple[str, Expansion]:
    """``word`` expanded; when ``words`` is a list, the expansion split into words is appended to it as well."""
    evaluator = _Evaluator(lexer, env)
    splitter = None if words is None else _Words()
    try:
        if _nesting(word, lexer.escape_token) > MAX_NESTING:
            raise _Failure(f"${{...}} nested more than {MAX_NESTING} deep")
        tree = _parser(lexer.escape_token, lexer.process_quotes).parse(word)
        result = evaluator.top(tree, splitter)
        if len(result) > MAX_EXPANDED_LENGTH:
            raise _Failure(_too_long())
    except UnexpectedInput as error:
        raise ExpansionError(f"failed to process {go_quote(word)}: {_describe_parse_error(error, word)}") from None
    except _Failure as failure:
        quoted = go_quote(word) if len(word) <= 1000 else f"{go_quote(word[:200])}... ({len(word)} characters)"
        raise ExpansionError(f"failed to process {quoted}: {failure}") from None
    if words is not None and splitter is not None:
        words.extend(splitter.finish())
    return result, Expansion(frozenset(evaluator.matched), frozenset(evaluator.unmatched))


_SPECIAL_PARAMS = frozenset("@*#?-$!0")

_NEVER = r"(?!)x"


@functools.cache
def _grammar_template() -> str:
    return resources.files("buildkit_py.frontend").joinpath("shell.lark").read_text(encoding="utf-8")


@functools.cache
def _parser(escape_token: str, process_quotes: bool) -> Lark:
    escape = re.escape(escape_token)
    text = (
        _grammar_template()
        .replace("@E@", escape)
        .replace("@Q@", "'\"" if process_quotes else "")
        .replace("@SQ@", "'[^']*'" if process_quotes else _NEVER)
        .replace("@DQ@", '"' if process_quotes else _NEVER)
    )
    return Lark(text, parser="lalr", lexer="contextual", propagate_positions=False)


def _go_name_length(text: str) -> int:
    """How much of ``text`` (what follows ``$`` or ``${``) Go's processName takes as the variable name."""
    if not text:
        return 0
    if text[0].isdecimal():
        end = 1
        while end < len(text) and text[end].isdecimal():
            end += 1
        return end
    if text[0] in _SPECIAL_PARAMS:
        return 1
    end = 0
    while end < len(text) and (text[end].isalpha() or text[end].isdecimal() or text[end] == "_"):
        end += 1
    return end


class _Failure(Exception):
    """An expansion error before it is wrapped with the word it came from."""


# Patterns of ${VAR#p}, ${VAR%p} and ${VAR/p/r} -------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _shell_pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            out.append(star)
        elif char == "?":
            out.append(".")
        elif char == "\\":
            following = pattern[index] if index < len(pattern) else ""
            if following in ("}", "/"):
                continue  # the escape only kept "}" or "/" from ending the ${...}; it is not part of the pattern
            if following not in ("*", "?", "\\"):
                shown = following if following else "EOF"
                raise _Failure(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            out.append("\\" + following)
            index += 1
        else:
            out.append(re.escape(char))
    return re.compile("".join(out))


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each ``\\x`` escape in front of the character it escapes."""
    chunks: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern[index] == "\\" and index != len(pattern) - 1:
            chunks.append(pattern[index : index + 2])
            index += 2
        else:
            chunks.append(pattern[index])
            index += 1
    return "".join(reversed(chunks))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _shell_pattern_regex(pattern, greedy, True).match(value)
    return value[match.end() :] if match else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex finds leftmost matches only, so the shortest suffix is the shortest prefix of the reversed value.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_expand_template(template: str, match: re.Match[str]) -> str:
    """Go's Regexp.Expand for a pattern without groups: ``$$`` is ``$``, ``$0`` or ``${0}`` the match, other names
    nothing."""
    out: list[str] = []
    index = 0
    while index < len(template):
        dollar = template.find("$", index)
        if dollar < 0:
            out.append(template[index:])
            break
        out.append(template[index:dollar])
        rest = template[dollar + 1 :]
        if rest.startswith("$"):
            out.append("$")
            index = dollar + 2
            continue
        brace = rest.startswith("{")
        body = rest[1:] if brace else rest
        length = 0
        while length < len(body) and (body[length].isalpha() or body[length].isdecimal() or body[length] == "_"):
            length += 1
        if length == 0 or (brace and body[length : length + 1] != "}"):
            out.append("$")
            index = dollar + 1
            continue
        if body[:length] == "0":
            out.append(match.group(0))
        index = dollar + 1 + length + (2 if brace else 0)
    return "".join(out)


def _replace(value: str, pattern: str, replacement: str, replace_all: bool) -> str:
    regex = _shell_pattern_regex(pattern, True, False)
    if not replace_all:
        found = regex.search(value)
        return value if found is None else value[: found.start()] + replacement + value[found.end() :]
    # Go skips an empty match that abuts the previous match; Python's re.sub does not.
    out: list[str] = []
    last_end = 0
    previous_end = -1
    for found in regex.finditer(value):
        if found.start() == found.end() == previous_end:
            continue
        out.append(value[last_end : found.start()])
        out.append(_go_expand_template(replacement, found))
        last_end = previous_end = found.end()
    out.append(value[last_end:])
    return "".join(out)


# Splitting into words (ProcessWords) ------------------------------------------------------------------------


@dataclass
class _Words:
    """BuildKit's wordsStruct: text from expansions and plain characters splits on whitespace, quoted text does not."""

    words: list[str] = field(default_factory=list)
    buffer: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_splitting(self, text: str) -> None:
        for char in text:
            if char in GO_SPACES:
                if self.in_word and any(self.buffer):
                    self.words.append("".join(self.buffer))
                    self.buffer.clear()
                    self.in_word = False
            else:
                self.buffer.append(char)
                self.in_word = True

    def add_raw(self, text: str) -> None:
        self.buffer.append(text)
        self.in_word = True

    def finish(self) -> list[str]:
        if any(self.buffer):
            self.words.append("".join(self.buffer))
        return self.words


# Evaluation ------------------------------------------------------------------------------------------------


class _Evaluator:
    def __init__(self, lexer: ShellLexer, env: Mapping[str, str]) -> None:
        self.lexer = lexer
        self.env = env
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.looked_up = 0  # characters of the values read so far: bounds what one word can grow to

    def lookup(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        if value is None:
            self.unmatched.add(name)
            return "", False
        self.matched.add(name)
        self.looked_up += len(value)
        if self.looked_up > MAX_EXPANDED_LENGTH:
            raise _Failure(_too_long())
        return value, True

    def top(self, tree: Tree[Token], words: _Words | None) -> str:
        raw = self.lexer.raw_escapes
        out: list[str] = []
        for child in tree.children:
            if isinstance(child, Token) and child.type in ("LIT", "RBRACE", "SLASH"):
                text, splits = str(child), True
            elif isinstance(child, Tree) and child.data == "dollar":
                text, splits = self.dollar(child), True
            else:
                text, splits = self.part(child, raw), False
            out.append(text)
            if words is not None:
                if splits:
                    words.add_splitting(text)
                else:
                    words.add_raw(text)
        return "".join(out)

    def word(self, tree: Tree[Token], raw: bool) -> str:
        return "".join(self.part(child, raw) for child in tree.children)

    def part(self, child: Tree[Token] | Token, raw: bool) -> str:
        if isinstance(child, Tree):
            return self.dollar(child) if child.data in ("dollar", "dq_dollar") else self.double_quoted(child, raw)
        kind, text = child.type, str(child)
        if kind == "ESCAPED":
            return text if raw else text[1:]
        if kind == "ESC_END":
            return text if raw else ""
        if kind == "SQ_STRING":
            return text if self.lexer.raw_quotes else text[1:-1]
        return text  # LIT, RBRACE, SLASH, HEREDOC

    def double_quoted(self, tree: Tree[Token], raw: bool) -> str:
        out: list[str] = []
        for child in tree.children:
            if isinstance(child, Tree):
                out.append(self.dollar(child))
            elif child.type == "DQ_ESCAPED":
                out.append(str(child) if raw else str(child)[1:])
            elif child.type == "DQ_LIT":
                out.append(str(child))
        text = "".join(out)
        return f'"{text}"' if self.lexer.raw_quotes else text

    def dollar(self, tree: Tree[Token]) -> str:
        head = tree.children[0]
        assert isinstance(head, Token)
        if head.type == "LONE_DOLLAR":
            return "$"
        if head.type == "SIMPLE_VAR":
            after = str(head)[1:]
            cut = _go_name_length(after)
            name, rest = after[:cut], after[cut:]
            value, found = self.lookup(name)
            if not found and self.lexer.skip_unset_env:
                return "$" + name + rest
            return value + rest
        after = str(head)[2:]
        cut = _go_name_length(after)
        name = after[:cut]
        modifier = tree.children[1] if len(tree.children) == 3 else None
        if not name and (modifier is None or self._modifier_text(modifier).startswith(":")):
            raise _Failure("syntax error: bad substitution")
        if cut < len(after):
            raise _Failure(f"unsupported modifier ({after[cut]}) in substitution")
        if modifier is None:
            value, found = self.lookup(name)
            if not found and self.lexer.skip_unset_env:
                return "${" + name + "}"
            return value
        assert isinstance(modifier, Tree)
        if modifier.data == "test_modifier":
            return self.test_modifier(name, modifier)
        return self.replacement(name, modifier)

    @staticmethod
    def _modifier_text(modifier: Tree[Token] | Token) -> str:
        assert isinstance(modifier, Tree)
        return str(modifier.children[0])

    def test_modifier(self, name: str, modifier: Tree[Token]) -> str:
        operator_token, word_tree = modifier.children
        assert isinstance(word_tree, Tree)
        operator = str(operator_token)
        kind = operator[-1]
        null_is_unset = operator.startswith(":")
        word = self.word(word_tree, raw=kind in "#%")
        value, found = self.lookup(name)
        if not found and self.lexer.skip_unset_env:
            return "${" + name + operator + word + "}"
        missing = not found or (null_is_unset and value == "")
        if kind == "-":
            return word if missing else value
        if kind == "+":
            return "" if missing else word
        if kind == "?":
            if not found:
                raise _Failure(f"{name}: {word or 'is not allowed to be unset'}")
            if missing:
                raise _Failure(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(kind)
        if greedy:
            word = word[1:]
        return _trim_suffix(word, value, greedy) if kind == "%" else _trim_prefix(word, value, greedy)

    def replacement(self, name: str, modifier: Tree[Token]) -> str:
        _, pattern_tree, _, replacement_tree = modifier.children
        assert isinstance(pattern_tree, Tree) and isinstance(replacement_tree, Tree)
        pattern = self.word(pattern_tree, raw=True)
        replacement = self.word(replacement_tree, raw=True)
        value, found = self.lookup(name)
        replace_all = modifier.data == "replace_all"
        if not found and self.lexer.skip_unset_env:
            return "${" + name + ("//" if replace_all else "/") + pattern + "/" + replacement + "}"
        return _replace(value, pattern, replacement, replace_all)


def _too_long() -> str:
    return f"the expansion is longer than {MAX_EXPANDED_LENGTH} characters"


def _nesting(word: str, escape_token: str) -> int:
    """How deep `${` nests in `word` (quotes not considered: deep enough is refused wherever it stands)."""
    depth = deepest = position = 0
    while position < len(word):
        if word[position] == escape_token:
            position += 2
        elif word.startswith("${", position):
            depth += 1
            deepest = max(deepest, depth)
            position += 2
        else:
            if word[position] == "}" and depth:
                depth -= 1
            position += 1
    return deepest


def _describe_parse_error(error: UnexpectedInput, word: str) -> str:
    token = getattr(error, "token", None)
    position = error.pos_in_stream
    at_end = isinstance(error, UnexpectedEOF) or (token is not None and token.type in ("$END", "ESC_END"))
    if not at_end and position is not None and position < len(word) and word[position] == "'":
        return "unexpected end of statement while looking for matching single-quote"
    expected = set(getattr(error, "expected", ()) or getattr(error, "allowed", ()) or ())
    if at_end and "DQ_LIT" in expected:
        return "unexpected end of statement while looking for matching double-quote"
    if at_end:
        return "syntax error: missing '}'"
    return "syntax error: bad substitution"
