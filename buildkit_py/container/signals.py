"""Signals by name or number, as `docker kill -s` and `--stop-signal` take them."""

from __future__ import annotations

import signal

from ..errors import ContainerError

__all__ = ["parse_signal", "signal_name"]


def parse_signal(text: str) -> int:
    """`KILL`, `SIGKILL`, `kill` or `9`; ContainerError ("Invalid signal: X") otherwise."""
    word = text.strip()
    if word.isdigit():
        number = int(word)
        if 0 < number <= signal.SIGRTMAX:
            return number
        raise ContainerError(f"Invalid signal: {text}")
    name = word.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ContainerError(f"Invalid signal: {text}") from None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
