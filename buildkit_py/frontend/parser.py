"""The low-level Dockerfile parser: text to one `Node` per instruction, like BuildKit's `frontend/dockerfile/parser`.

Nothing is expanded and no quotes are removed here; arguments are split per instruction (JSON exec form, whitespace,
quote-aware words, key/value pairs) and leading `--flags` are kept raw for a later layer to validate.

dockerfile-parse is not used: its `structure` ends an instruction at a blank line inside a continuation, treats an
escaped escape (`\\\\`) at the end of a line as a continuation, ignores the `check` directive and duplicate
directives, and knows no heredocs; on the conformance data it groups lines into the wrong instructions in 7 of 33
cases. Line joining and directives therefore follow BuildKit's `Parse` directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NoReturn

from buildkit_py.errors import DockerfileSyntaxError, SourceLocation

from ..gostring import (
    go_quote,
    go_quote_list,
    go_trim_left_space,
    go_trim_space,
    is_go_space,
)

__all__ = ["Heredoc", "Node", "ParsedDockerfile", "chomp_heredoc", "dump", "parse_dockerfile", "parse_heredoc_word"]


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to RUN/COPY/ADD: `<<[-]NAME` in the instruction, then lines up to `NAME`."""

    name: str
    content: str
    expand: bool
    chomp: bool
    file_descriptor: int = 0


@dataclass(frozen=True)
class Node:
    """One instruction: `KEYWORD [--flag ...] args`, split per the instruction's rules, quotes still in place."""

    keyword: str
    args: tuple[str, ...]
    flags: tuple[str, ...]
    json_form: bool
    original: str
    start_line: int
    end_line: int
    child: Node | None = None
    heredocs: tuple[Heredoc, ...] = ()
    comments: tuple[str, ...] = ()  # the comment lines right above it (BuildKit's PrevComment), `#` removed


@dataclass(frozen=True)
class ParsedDockerfile:
    """A parsed file: its instructions in order, the escape token and `# key=value` directives in effect."""

    nodes: tuple[Node, ...]
    escape_token: str
    directives: Mapping[str, str]
    warnings: tuple[str, ...]
    filename: str
    directive_lines: Mapping[str, int] = field(default_factory=dict)
    empty_continuation_lines: tuple[int, ...] = ()


class _LineError(Exception):
    """An instruction's text is invalid; the caller adds the location."""


_Args = tuple[tuple[str, ...], bool]

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)")
_HEREDOC_KEYWORDS = frozenset({"add", "copy", "run"})
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"
_UTF8_BOM = b"\xef\xbb\xbf"


# --- reading lines ---------------------------------------------------------------------------------------------------


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    return data.removeprefix(_UTF8_BOM).decode("utf-8", errors="surrogateescape")


def _split_lines(text: str) -> list[str]:
    """Lines with their `\\n` kept; `\\r` and other separators are ordinary characters, as in Go's scanner."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return go_trim_left_space(line).startswith("#")


class _Directives:
    """The `# key=value` block at the top of the file; it ends at the first line that is not a known directive."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.values: dict[str, str] = {}
        self.lines: dict[str, int] = {}
        self.escape = "\\"
        self.continuation = _continuation_regex(self.escape)
        self.done = False

    def feed(self, line: str, line_number: int) -> bool:
        """Take `line` as a directive if the directive block is still open; say whether it was one."""
        if self.done:
            return False
        match = _DIRECTIVE.fullmatch(go_trim_left_space(line[1:])) if line.startswith("#") else None
        key = match.group(1).lower() if match else ""
        if match is None or key not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        if key in self.values:
            self._fail(f"only one {key} parser directive can be used", line, line_number)
        value = match.group(2)
        if key == "escape":
            self._set_escape(value, line, line_number)
        self.values[key] = value
        self.lines[key] = line_number
        return True

    def _set_escape(self, value: str, line: str, line_number: int) -> None:
        if value not in ("\\", "`"):
            self._fail(f"invalid escape token '{value}' does not match ` or \\", line, line_number)
        self.escape = value
        self.continuation = _continuation_regex(value)

    def _fail(self, message: str, line: str, line_number: int) -> None:
        raise DockerfileSyntaxError(message, SourceLocation(self.filename, line_number, line_number, line))

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Remove a trailing escape token; the bool says whether the instruction ends on this line."""
        match = self.continuation.search(line)
        if match is None:
            return line, True
        return line[: match.start()] + (match.group(1) or ""), False


def _continuation_regex(escape: str) -> re.Pattern[str]:
    token = re.escape(escape)
    # An escape token preceded by another escape token is an escaped character, not a continuation.
    return re.compile(rf"([^{token}]){token}[ \t]*\Z|^{token}[ \t]*\Z")


# --- splitting an instruction ----------------------------------------------------------------------------------------


def _split_command(line: str, escape: str) -> tuple[str, tuple[str, ...], str]:
    parts = _WHITESPACE.split(go_trim_space(line), maxsplit=1)
    if len(parts) == 1:
        return parts[0], (), ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, go_trim_space(rest)


def _extract_flags(line: str, escape: str) -> tuple[str, tuple[str, ...]]:
    """Leading `--name=value` words (quotes and escapes removed); a bare `--` ends them and is dropped."""
    flags: list[str] = []
    pos = 0
    while True:
        while pos < len(line) and is_go_space(line[pos]):
            pos += 1
        if not line.startswith("--", pos):
            return line[pos:], tuple(flags)
        word, pos, quoted = _read_flag(line, pos, escape)
        if word == "--":
            return line[pos:], tuple(flags)
        if word or quoted:
            flags.append(word)


def _read_flag(line: str, pos: int, escape: str) -> tuple[str, int, bool]:
    chars: list[str] = []
    quote = ""
    quoted = False
    while pos < len(line):
        ch = line[pos]
        pos += 1
        if not quote and is_go_space(ch):
            return "".join(chars), pos - 1, quoted
        if not quote and ch in "'\"":
            quote, quoted = ch, True
            continue
        if quote and ch == quote:
            quote = ""
            continue
        if ch == escape:
            if pos == len(line):
                quote = ""
                continue
            ch = line[pos]
            pos += 1
        chars.append(ch)
    return "".join(chars), pos, quoted


def _split_words(rest: str, escape: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escape tokens in the words (BuildKit `parseWords`)."""
    words: list[str] = []
    pos = 0
    while True:
        while pos < len(rest) and is_go_space(rest[pos]):
            pos += 1
        if pos == len(rest):
            return words
        word, pos, quoted = _read_word(rest, pos, escape)
        if word or quoted:
            words.append(word)


def _read_word(rest: str, pos: int, escape: str) -> tuple[str, int, bool]:
    chars: list[str] = []
    quote = ""
    quoted = False
    while pos < len(rest):
        ch = rest[pos]
        pos += 1
        if not quote and is_go_space(ch):
            return "".join(chars), pos - 1, quoted
        if not quote and ch in "'\"":
            quote, quoted = ch, True
        elif quote and ch == quote:
            quote = ""
        elif ch == escape and quote != "'":
            if pos == len(rest):
                quote = ""
                continue
            chars.append(ch)
            ch = rest[pos]
            pos += 1
        chars.append(ch)
    return "".join(chars), pos, quoted


# --- per-instruction argument rules (BuildKit `line_parsers.go`) -----------------------------------------------------


def _parse_ignore(rest: str, escape: str) -> _Args:
    return (), False


def _parse_string(rest: str, escape: str) -> _Args:
    return ((rest,) if rest else ()), False


def _parse_whitespace_delimited(rest: str, escape: str) -> _Args:
    return (tuple(_WHITESPACE.split(rest)) if rest else ()), False


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"not JSON: {name}")


def _parse_json_array(rest: str) -> tuple[str, ...] | None:
    rest = go_trim_left_space(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise _LineError(_NOT_STRING_ARRAY)
    # Go's JSON decoder turns invalid UTF-8 and lone surrogates into U+FFFD.
    return tuple(re.sub("[\ud800-\udfff]", "\ufffd", item) for item in value)


def _parse_maybe_json(rest: str, escape: str) -> _Args:
    if not rest:
        return (), False
    array = _parse_json_array(rest)
    return (array, True) if array is not None else ((rest,), False)


def _parse_maybe_json_to_list(rest: str, escape: str) -> _Args:
    array = _parse_json_array(rest)
    return (array, True) if array is not None else _parse_whitespace_delimited(rest, escape)


def _parse_healthcheck(rest: str, escape: str) -> _Args:
    kind_end = 0
    while kind_end < len(rest) and not is_go_space(rest[kind_end]):
        kind_end += 1
    if kind_end == 0:
        return (), False
    command, json_form = _parse_maybe_json(go_trim_left_space(rest[kind_end:]), escape)
    return (rest[:kind_end], *command), json_form


def _parse_name_value(rest: str, keyword: str, escape: str) -> _Args:
    words = _split_words(rest, escape)
    if not words:
        return (), False
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _LineError(f"{keyword} must have two arguments")
        return (parts[0], parts[1], ""), False
    args: list[str] = []
    for word in words:
        if "=" not in word:
            raise _LineError(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        key, value = word.split("=", 1)
        args += [key, value, "="]
    return tuple(args), False


def _parse_env(rest: str, escape: str) -> _Args:
    return _parse_name_value(rest, "ENV", escape)


def _parse_label(rest: str, escape: str) -> _Args:
    return _parse_name_value(rest, "LABEL", escape)


def _parse_words(rest: str, escape: str) -> _Args:
    return tuple(_split_words(rest, escape)), False


_ARG_PARSERS: Mapping[str, Callable[[str, str], _Args]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_words,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_healthcheck,
    "label": _parse_label,
    "maintainer": _parse_string,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}


def _node_from_line(line: str, escape: str, start_line: int, end_line: int) -> Node:
    keyword, flags, rest = _split_command(line, escape)
    lowered = keyword.lower()
    if lowered == "onbuild":
        child = _node_from_line(rest, escape, start_line, end_line) if rest else None
        return Node(lowered, (), flags, False, line, start_line, end_line, child=child)
    args, json_form = _ARG_PARSERS.get(lowered, _parse_ignore)(rest, escape)
    return Node(lowered, args, flags, json_form, line, start_line, end_line)


# --- heredocs --------------------------------------------------------------------------------------------------------


def _can_contain_heredoc(node: Node) -> bool:
    target = node.child if node.keyword == "onbuild" and node.child is not None else node
    return target.keyword in _HEREDOC_KEYWORDS and not target.json_form


def _closing_quote(text: str, pos: int) -> int:
    """Index just past the quote that closes the one at `pos`; -1 if it is never closed."""
    quote = text[pos]
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == quote:
            return pos + 1
        if quote == '"' and ch == "\\" and pos + 1 < len(text) and text[pos + 1] in '"$\\':
            pos += 1
        pos += 1
    return -1


def _unescape_double_quoted(match: re.Match[str], raw_escapes: bool) -> str:
    escaped = match.group(1)
    if escaped:
        return "\\" + escaped if raw_escapes else escaped
    # BuildKit writes a raw-mode backslash that escapes nothing twice.
    return "\\\\" if raw_escapes else "\\"


def _unquote(quoted: str, raw_quotes: bool, raw_escapes: bool) -> str:
    body = quoted[1:-1]
    if quoted[0] == '"':
        body = re.sub(r'\\(["$\\])|\\', lambda match: _unescape_double_quoted(match, raw_escapes), body)
    return quoted[0] + body + quoted[-1] if raw_quotes else body


def _shell_words(text: str, raw_quotes: bool, raw_escapes: bool) -> list[str] | None:
    """BuildKit's shell lexer word split for heredoc detection, without expansion; None on an unclosed quote."""
    words: list[str] = []
    word = ""
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch in "'\"":
            end = _closing_quote(text, pos)
            if end < 0:
                return None
            word += _unquote(text[pos:end], raw_quotes, raw_escapes)
            pos = end
        elif text.startswith("<<", pos):
            end = pos + 2
            while end < len(text) and text[end] in " \t\r":
                end += 1
            word += text[pos:end]
            pos = end
        elif ch == "\\":
            word += text[pos : pos + 2] if raw_escapes else text[pos + 1 : pos + 2]
            pos += 2
        elif is_go_space(ch):
            if word:
                words.append(word)
                word = ""
            pos += 1
        else:
            word += ch
            pos += 1
    if word:
        words.append(word)
    return words


def _heredoc_from_word(word: str) -> Heredoc | None:
    match = _HEREDOC_WORD.fullmatch(word)
    if match is None or not match.group(3):
        return None
    names = _shell_words(match.group(3), raw_quotes=False, raw_escapes=False)
    raw_names = _shell_words(match.group(3), raw_quotes=True, raw_escapes=False)
    if names is None or raw_names is None or len(names) != 1 or len(raw_names) != 1:
        return None
    quotes = names[0].count("'") + names[0].count('"')
    raw_quotes = raw_names[0].count("'") + raw_names[0].count('"')
    return Heredoc(
        name=names[0],
        content="",
        expand=quotes == raw_quotes,
        chomp=match.group(2) == "-",
        file_descriptor=int(match.group(1) or "0"),
    )


def parse_heredoc_word(word: str) -> Heredoc | None:
    """The heredoc a word such as `<<EOF`, `<<-'EOF'` or `3<<EOF` opens (its content empty); None for other words."""
    return _heredoc_from_word(word)


def chomp_heredoc(content: str) -> str:
    """`<<-`: the leading tabs of every line removed."""
    return re.sub(r"(?m)^\t+", "", content)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    words = _shell_words(line, raw_quotes=True, raw_escapes=True) or []
    return [doc for doc in map(_heredoc_from_word, words) if doc is not None]


# --- the file --------------------------------------------------------------------------------------------------------


@dataclass
class _Reader:
    """Walks the lines once; `line_number` is the 1-based number of the last line consumed."""

    lines: list[str]
    filename: str
    line_number: int = 0
    warnings: list[str] = field(default_factory=list)
    empty_continuation_lines: list[int] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def more(self) -> bool:
        return self.line_number < len(self.lines)

    def next_line(self) -> str:
        self.line_number += 1
        return self.lines[self.line_number - 1]

    def location(self, start_line: int) -> SourceLocation:
        text = "\n".join(_trim_newline(line) for line in self.lines[start_line - 1 : self.line_number])
        return SourceLocation(self.filename, start_line, self.line_number, text)

    def read_instruction(self, directives: _Directives) -> tuple[str, int] | None:
        """Join one instruction's lines; None when the line read holds no instruction."""
        first = go_trim_left_space(_trim_newline(self.next_line()))
        was_directive = directives.feed(first, self.line_number)
        if _is_comment(first) and not was_directive:
            comment = go_trim_space(first[1:])
            self.comments = [*self.comments, comment] if comment else []
        start_line = self.line_number
        text, ended = directives.trim_continuation("" if _is_comment(first) else first)
        if ended and not text:
            return None
        parts = [text]
        had_empty_line = False
        while not ended and self.more():
            raw = self.next_line()
            line = _trim_newline(raw)
            if _is_comment(raw):
                continue
            if not go_trim_left_space(line):
                had_empty_line = True
                continue
            text, ended = directives.trim_continuation(line)
            parts.append(text)
        joined = "".join(parts)
        if had_empty_line:
            self.warnings.append(f"Empty continuation line found in: {joined}")
            self.empty_continuation_lines.append(self.line_number)
        return joined, start_line

    def read_heredocs(self, docs: list[Heredoc], start_line: int) -> tuple[Heredoc, ...]:
        return tuple(self._read_heredoc(doc, start_line) for doc in docs)

    def _read_heredoc(self, doc: Heredoc, start_line: int) -> Heredoc:
        content: list[str] = []
        while self.more():
            raw = self.next_line()
            candidate = _trim_newline(raw)
            if (candidate.lstrip("\t") if doc.chomp else candidate) == doc.name:
                return replace(doc, content="".join(content))
            content.append(raw)
        raise DockerfileSyntaxError("unterminated heredoc", self.location(start_line))


def _read_node(reader: _Reader, directives: _Directives, line: str, start_line: int) -> Node:
    comments, reader.comments = tuple(reader.comments), []
    try:
        node = replace(_node_from_line(line, directives.escape, start_line, reader.line_number), comments=comments)
    except _LineError as error:
        keyword = _WHITESPACE.split(go_trim_space(line), maxsplit=1)[0].upper()
        raise DockerfileSyntaxError(str(error), reader.location(start_line), instruction=keyword) from None
    if "<<" not in line or not _can_contain_heredoc(node):
        return node
    heredocs = reader.read_heredocs(_heredocs_from_line(line), start_line)
    return replace(node, heredocs=heredocs, end_line=reader.line_number)


def parse_dockerfile(data: bytes | str, filename: str = "Dockerfile") -> ParsedDockerfile:
    """Parse a Dockerfile into instruction nodes; raises DockerfileSyntaxError.

    Invalid UTF-8 bytes survive as surrogate escapes (`errors="surrogateescape"`).
    """
    reader = _Reader(_split_lines(_decode(data)), filename)
    directives = _Directives(filename)
    nodes: list[Node] = []
    while reader.more():
        instruction = reader.read_instruction(directives)
        if instruction is not None:
            nodes.append(_read_node(reader, directives, *instruction))
    if not nodes:
        location = SourceLocation(filename, reader.line_number, reader.line_number)
        raise DockerfileSyntaxError("file with no instructions", location)
    return ParsedDockerfile(
        nodes=tuple(nodes),
        escape_token=directives.escape,
        directives=MappingProxyType(dict(directives.values)),
        warnings=tuple(reader.warnings),
        filename=filename,
        directive_lines=MappingProxyType(dict(directives.lines)),
        empty_continuation_lines=tuple(reader.empty_continuation_lines),
    )


# --- dump ------------------------------------------------------------------------------------------------------------


def _dump_node(node: Node) -> str:
    parts = [node.keyword]
    if node.flags:
        parts.append(go_quote_list(node.flags))
    parts.extend(go_quote(arg) for arg in node.args)
    if node.child is not None:
        parts.append(f"({_dump_node(node.child)})")
    return go_trim_space(" ".join(parts))


def dump(parsed: ParsedDockerfile) -> str:
    """BuildKit's `Node.Dump` of the root plus a final newline: the content of a conformance `result` file."""
    return go_trim_space("".join(f"({_dump_node(node)})\n" for node in parsed.nodes)) + "\n"
