"""Container logs in Docker's json-file format: one JSON object a line, `{"log": "...", "stream": "stdout",
"time": "<RFC 3339, nanoseconds>"}`, each `log` a line with its newline (a partial line is written as it is when it
grows past 16 KiB or the stream ends, as Docker does)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

__all__ = ["LogEntry", "LogWriter", "parse_time", "read_entries", "rfc3339_nano"]

_MAX_PARTIAL = 16 * 1024


def rfc3339_nano(time_ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def parse_time(text: str) -> int:
    """An RFC 3339 time (as written here) in nanoseconds."""
    head, _, rest = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int((rest or "0")[:9].ljust(9, "0"))


def _go_json(text: str) -> str:
    # Go's encoder escapes <, > and & and keeps other characters as UTF-8.
    encoded = json.dumps(text, ensure_ascii=False)
    return encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class LogWriter:
    def __init__(self, path: Path) -> None:
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - open for the monitor's lifetime
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def write(self, stream: str, data: bytes) -> None:
        buffer = self._partial[stream]
        buffer += data
        lines: list[bytes] = []
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            lines.append(bytes(buffer[: newline + 1]))
            del buffer[: newline + 1]
        if len(buffer) >= _MAX_PARTIAL:
            lines.append(bytes(buffer))
            buffer.clear()
        self._emit(stream, lines)

    def _emit(self, stream: str, lines: list[bytes]) -> None:
        if not lines:
            return
        now = rfc3339_nano(time.time_ns())
        out = b"".join(
            ('{"log":' + _go_json(line.decode(errors="replace")) + f',"stream":"{stream}","time":"{now}"}}\n').encode()
            for line in lines
        )
        self._file.write(out)

    def close(self) -> None:
        for stream, buffer in self._partial.items():
            if buffer:
                self._emit(stream, [bytes(buffer)])
                buffer.clear()
        self._file.close()


@dataclass(frozen=True)
class LogEntry:
    log: str
    stream: str
    time: str

    @property
    def time_ns(self) -> int:
        return parse_time(self.time)


def _entry(line: bytes) -> LogEntry | None:
    try:
        document = json.loads(line)
    except ValueError:
        return None  # a line still being written
    if not isinstance(document, dict):
        return None
    return LogEntry(str(document.get("log", "")), str(document.get("stream", "stdout")), str(document.get("time", "")))


def read_entries(stream: BinaryIO) -> Iterator[LogEntry]:
    """The complete entries from the current position; a trailing partial line is left unread."""
    while True:
        start = stream.tell()
        line = stream.readline()
        if not line:
            return
        if not line.endswith(b"\n"):
            stream.seek(start, os.SEEK_SET)
            return
        entry = _entry(line)
        if entry is not None:
            yield entry
