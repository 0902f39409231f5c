"""What a COPY or ADD has placed so far (files and bytes), counted as it copies and passed on every so often.

In a build the counting runs in the file sandbox, and `report` writes the counts to the executor as plain numbers
(wire.encode_counts) on a pipe of their own; no step process ever runs in that sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CopyCounter", "CopyReport"]

CopyReport = Callable[[int, int], None]  # (files, bytes) placed so far
_INTERVAL = 0.1


class CopyCounter:
    """Counts files and bytes; calls `report` at most every `interval` seconds, and once more at `finish`."""

    def __init__(self, report: CopyReport, interval: float = _INTERVAL) -> None:
        self.report = report
        self.interval = interval
        self.files = 0
        self.bytes = 0
        self._reported_at = time.monotonic()
        self._reported: tuple[int, int] = (0, 0)

    def add_file(self) -> None:
        self.files += 1
        self._maybe_report()

    def add_bytes(self, count: int) -> None:
        self.bytes += count
        self._maybe_report()

    def _maybe_report(self) -> None:
        now = time.monotonic()
        if now - self._reported_at >= self.interval:
            self._reported_at = now
            self._send()

    def _send(self) -> None:
        counts = (self.files, self.bytes)
        if counts != self._reported:
            self._reported = counts
            self.report(*counts)

    def finish(self) -> None:
        self._send()
