"""Go string behaviour the Dockerfile parser must reproduce: `strconv.Quote`, `unicode.IsSpace`, `strings.TrimSpace`.

Text decoded with ``errors="surrogateescape"`` keeps invalid UTF-8 bytes as U+DC80..U+DCFF; `go_quote` renders those
as ``\\xNN`` like Go does for the raw byte.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

__all__ = [
    "GO_SPACES",
    "go_clean",
    "go_quote",
    "go_quote_list",
    "go_quote_rune",
    "go_trim_left_space",
    "go_trim_space",
    "is_go_space",
]

# unicode.IsSpace: the Latin-1 spaces plus the White_Space property above U+00FF.
GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

_NAMED_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}

_ESCAPED_BYTES = range(0xDC80, 0xDD00)
_SURROGATES = range(0xD800, 0xE000)


def is_go_space(ch: str) -> bool:
    return ch in GO_SPACES


_SPACE_CHARS = "".join(GO_SPACES)


def go_trim_space(text: str) -> str:
    return text.strip(_SPACE_CHARS)


def go_trim_left_space(text: str) -> str:
    return text.lstrip(_SPACE_CHARS)


def _is_go_printable(ch: str) -> bool:
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def _quote_rune(ch: str) -> str:
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    code = ord(ch)
    if code in _ESCAPED_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    if code in _SURROGATES:
        return "\ufffd"
    if _is_go_printable(ch):
        return ch
    if code < 0x80:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def go_quote(text: str) -> str:
    """Go `strconv.Quote`: a double-quoted literal with Go escapes for non-printable runes."""
    return '"' + "".join(_quote_rune(ch) for ch in text) + '"'


def go_quote_list(items: Iterable[str]) -> str:
    """Go `fmt.Sprintf("%q", []string{...})`."""
    return "[" + " ".join(go_quote(item) for item in items) + "]"


def go_quote_rune(code: int) -> str:
    """Go's `%q` of an int (`strconv.QuoteRune`), as Docker's history shows HEALTHCHECK's retries."""
    if 0x20 <= code < 0x7F and chr(code) not in "'\\":
        return f"'{chr(code)}'"
    if code < 0x80:
        return f"'\\x{code:02x}'"
    return f"'\\u{code:04x}'"


def go_clean(path: str) -> str:
    """Go's path/filepath.Clean for "/"-separated paths."""
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
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."
