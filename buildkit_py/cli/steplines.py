"""A step's output bytes as whole display lines, each safe to print after a `#N` prefix.

A step writes what it likes: lines without an end, carriage returns that redraw a progress bar, escape sequences that
move the cursor or clear the line. Printed as they are, they overwrite the `#N` prefix or the lines of another step.
Here a carriage return ends a line like a newline does (what a terminal would have overwritten is kept as a line of
its own), and every escape sequence but colours (SGR) and every other control character is dropped.
"""

from __future__ import annotations

import re

__all__ = ["StepLines", "clean_line"]

_ESCAPES = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, erases, colours
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    rb"|\x1b[ -/]*[0-~]?"  # any other escape
)
_CONTROLS = re.compile(rb"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")  # ESC: only in the colours kept
_COLOUR = re.compile(rb"\x1b\[[0-9;]*m")
_RESET = "\x1b[0m"
_MAX_PARTIAL = 1 << 20  # an unended line this long is printed as it is


def _keep_colours(match: re.Match[bytes]) -> bytes:
    return match.group(0) if _COLOUR.fullmatch(match.group(0)) else b""


def clean_line(line: bytes, colours: bool = True) -> str:
    """One output line as text that cannot move the cursor; colours are kept (and reset at its end) or dropped."""
    cleaned = _CONTROLS.sub(b"", _ESCAPES.sub(_keep_colours if colours else b"", line))
    text = cleaned.decode(errors="replace")
    return text + _RESET if "\x1b[" in text else text


class StepLines:
    """Splits one step's output into lines as it arrives."""

    def __init__(self) -> None:
        self._partial = b""
        self._after_return = False  # the partial line is what followed a carriage return

    def feed(self, data: bytes) -> list[str]:
        """The lines `data` completes."""
        lines: list[bytes] = []
        *complete, rest = (self._partial + data).split(b"\n")
        for index, line in enumerate(complete):
            segments = [segment for segment in line.removesuffix(b"\r").split(b"\r") if segment]
            if not segments and not (index == 0 and self._after_return):
                segments = [b""]  # an empty line of its own, not the newline that follows a carriage return
            lines += segments
            self._after_return = False
        if b"\r" in rest:
            *ended, rest = rest.split(b"\r")
            lines += [segment for segment in ended if segment]
            self._after_return = True
        if len(rest) > _MAX_PARTIAL:
            lines.append(rest)
            rest = b""
        self._partial = rest
        return [clean_line(line) for line in lines]

    def flush(self) -> list[str]:
        """The last line, when the output did not end with one."""
        rest, self._partial = self._partial, b""
        return [clean_line(rest)] if rest else []
