"""Reading a container's json-file log for `pybuild logs`: --tail, --since/--until, -t, and -f (following the file
while the container's monitor runs)."""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ContainerError
from .logs import LogEntry, parse_time, read_entries

__all__ = ["follow_entries", "parse_log_time", "select_entries"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_log_time(text: str, now: float | None = None) -> int:
    """Docker's --since/--until: a Go duration before now (`10m`, `1h30m`), Unix seconds, or an RFC 3339 time.
    Nanoseconds since the epoch."""
    now = time.time() if now is None else now
    if _DURATION.fullmatch(text) or (text and "".join(m.group(0) for m in _DURATION.finditer(text)) == text):
        seconds = sum(float(m.group(1)) * _UNIT_SECONDS[m.group(2)] for m in _DURATION.finditer(text))
        return int((now - seconds) * 1e9)
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    try:
        if "T" in text:
            return parse_time(text)
        return parse_time(text + "T00:00:00Z")
    except ValueError:
        raise ContainerError(f'invalid value for "since"/"until": {text}') from None


def select_entries(path: Path, tail: int | None, since: int | None, until: int | None) -> tuple[list[LogEntry], int]:
    """The entries to print now, and the file offset to follow from."""
    if not path.exists():
        return [], 0
    with open(path, "rb") as stream:
        kept: deque[LogEntry] = deque(maxlen=tail) if tail is not None and tail >= 0 else deque()
        for entry in read_entries(stream):
            moment = entry.time_ns
            if since is not None and moment < since:
                continue
            if until is not None and moment > until:
                continue
            kept.append(entry)
        return list(kept), stream.tell()


def follow_entries(path: Path, offset: int, running: Callable[[], bool], poll: float = 0.1) -> Iterator[LogEntry]:
    """Entries written after `offset`, until `running()` turns false (and the rest is read)."""
    while not path.exists():
        if not running():
            return
        time.sleep(poll)
    with open(path, "rb") as stream:
        stream.seek(offset, os.SEEK_SET)
        while True:
            alive = running()
            yield from read_entries(stream)
            if not alive:
                return
            time.sleep(poll)
