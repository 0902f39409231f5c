"""`--detach-keys`: the key sequence that detaches an attached session, in Docker's syntax (moby/term's ToBytes).

A comma-separated sequence; each key is one character (`a`, `x`, `Q`) or `ctrl-<key>` for `<key>` in `a`..`z`,
`@`, `[`, `\\`, `]`, `^`, `_`, or `DEL`. The default is `ctrl-p,ctrl-q`.
"""

from __future__ import annotations

from typing import NoReturn

from ..errors import ContainerError

__all__ = ["DEFAULT_DETACH_KEYS", "parse_detach_keys"]

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p,ctrl-q
_CONTROL_KEYS = "@abcdefghijklmnopqrstuvwxyz[\\]^_"  # ctrl-@ is 0, ctrl-a 1, ... ctrl-_ 31


def parse_detach_keys(text: str | None) -> bytes:
    """The bytes of `text` (None: the default); ContainerError with Docker's message for anything else."""
    if text is None:
        return DEFAULT_DETACH_KEYS
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1 and key.isascii():
            codes.append(ord(key))
        elif key == "DEL":
            codes.append(127)
        elif key.startswith("ctrl-") and len(key) == 6 and key[5] in _CONTROL_KEYS:
            codes.append(_CONTROL_KEYS.index(key[5]))
        else:
            _invalid(text)
    return bytes(codes)


def _invalid(text: str) -> NoReturn:
    raise ContainerError(f"Invalid escape keys ({text}) provided")
