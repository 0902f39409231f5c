"""`--chmod` values: an octal mode, or chmod(1)'s symbolic clauses applied to each file's own mode.

    755  0644  07777                         octal (at most 07777): every copied file and directory gets it
    u+x,g-w   go=   a+X   u=rwX,go=rX   g=u   symbolic: comma-separated clauses, each `who` (u, g, o, a; none
                                             means all) then one or more `op perms`, op one of + - =

Perms are letters of `rwxXst`, or one class letter (`u`, `g`, `o`) to copy that class's current bits. `X` is
execute for a directory or for a file that already has an execute bit (before this chmod); it adds with `+` and
`=` and is ignored with `-`. `s` is setuid for `u`, setgid for `g` (nothing for `o` alone); `t` is the sticky bit
unless `who` is `o` alone. `=` clears the classes' rwx (and their set-id bits; the sticky bit only when `t` is
given) before setting. No umask applies: BuildKit parses symbolic modes with a umask of 0.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

__all__ = ["FileMode", "FileModeError", "parse_file_mode"]

_CLASS_SHIFT = {"u": 6, "g": 3, "o": 0}
_WHO_BITS = {"u": 4, "g": 2, "o": 1, "a": 7}
_PERM_BITS = {"r": 4, "w": 2, "x": 1}
_OPS = "+-="
_PERM_LETTERS = frozenset("rwxXst")
_MAX_OCTAL = 0o7777


class FileModeError(ValueError):
    """The text is neither an octal mode nor symbolic clauses; the message says which rule it broke."""


@dataclass(frozen=True)
class _Action:
    who: int  # classes as bits: 4 user, 2 group, 1 other; 0 when no `who` was written
    op: str
    perms: str  # letters of rwxXst
    copy_from: str = ""  # a class letter whose bits are copied, instead of perms


@dataclass(frozen=True)
class FileMode:
    """A parsed --chmod value. `octal` is set for an octal mode, else `actions` hold the symbolic clauses."""

    text: str
    octal: int | None
    actions: tuple[_Action, ...] = ()

    def apply(self, mode: int, is_dir: bool) -> int:
        """The permission bits (07777) a file of `mode` (its st_mode or permission bits) gets."""
        if self.octal is not None:
            return self.octal
        original = stat.S_IMODE(mode)
        current = original
        for action in self.actions:
            current = _apply(action, current, original, is_dir)
        return current

    @property
    def symbolic(self) -> bool:
        return self.octal is None


def _classes(who: int) -> list[str]:
    chosen = who or 7
    return [name for name, bit in (("u", 4), ("g", 2), ("o", 1)) if chosen & bit]


def _apply(action: _Action, current: int, original: int, is_dir: bool) -> int:
    classes = _classes(action.who)
    if action.copy_from:
        value = (current >> _CLASS_SHIFT[action.copy_from]) & 7
        for name in classes:
            shift = _CLASS_SHIFT[name]
            if action.op == "=":
                current &= ~(7 << shift)
            if action.op == "-":
                current &= ~(value << shift)
            else:
                current |= value << shift
        return current
    rwx = 0
    for letter in action.perms:
        rwx |= _PERM_BITS.get(letter, 0)
    if "X" in action.perms and action.op != "-" and (is_dir or original & 0o111):
        rwx |= 1
    bits = 0
    clear = 0
    for name in classes:
        bits |= rwx << _CLASS_SHIFT[name]
        clear |= 7 << _CLASS_SHIFT[name]
    if "u" in classes:
        clear |= stat.S_ISUID
        if "s" in action.perms:
            bits |= stat.S_ISUID
    if "g" in classes:
        clear |= stat.S_ISGID
        if "s" in action.perms:
            bits |= stat.S_ISGID
    if "t" in action.perms and (action.who == 0 or action.who & 6):
        bits |= stat.S_ISVTX
        clear |= stat.S_ISVTX
    if action.op == "+":
        return current | bits
    if action.op == "-":
        return current & ~bits
    return (current & ~clear) | bits


def _octal_error(text: str) -> FileModeError:
    return FileModeError(f"invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777")


def parse_file_mode(text: str) -> FileMode:
    """Parse a --chmod value as BuildKit does: octal when it starts with a digit, else symbolic."""
    if not text:
        raise FileModeError("invalid chmod parameter: '': an empty mode")
    if text[0].isdigit():
        if not all(char in "01234567" for char in text) or int(text, 8) > _MAX_OCTAL:
            raise _octal_error(text)
        return FileMode(text, int(text, 8))
    actions: list[_Action] = []
    for clause in text.split(","):
        actions.extend(_clause(text, clause))
    return FileMode(text, None, tuple(actions))


def _clause(text: str, clause: str) -> list[_Action]:
    def bad(reason: str) -> FileModeError:
        return FileModeError(f"invalid chmod parameter: '{text}': {reason} (use octal, or clauses such as u+x,g-w)")

    index = 0
    who = 0
    while index < len(clause) and clause[index] in _WHO_BITS:
        who |= _WHO_BITS[clause[index]]
        index += 1
    if index >= len(clause):
        raise bad(f"the clause {clause!r} has no + - =")
    actions: list[_Action] = []
    while index < len(clause):
        op = clause[index]
        if op not in _OPS:
            raise bad(f"unexpected {op!r} in {clause!r}")
        index += 1
        if index < len(clause) and clause[index] in _CLASS_SHIFT:
            actions.append(_Action(who, op, "", clause[index]))
            index += 1
            continue
        start = index
        while index < len(clause) and clause[index] in _PERM_LETTERS:
            index += 1
        actions.append(_Action(who, op, clause[start:index]))
    return actions
