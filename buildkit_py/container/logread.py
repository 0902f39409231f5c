"""Reading a container's json-file log for `pybuild logs`: --tail, --since/--until, -t, and -f (following the file
while the container's monitor, its writer, runs)."""

from __future__ import annotations

import ctypes
import os
import re
import select
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from ..errors import ContainerError
from .logs import LogEntry, parse_time, read_entries
from .procinfo import start_time

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


def follow_entries(path: Path, offset: int, monitor_pid: int, monitor_start: int) -> Iterator[LogEntry]:
    """Entries written after `offset` while the container's monitor (the log's only writer) runs, and the rest once
    it has exited. Blocks on the monitor's pidfd and an inotify watch of the file: no polling."""
    monitor = _pidfd(monitor_pid, monitor_start)
    watch = _watch(path) if monitor >= 0 else -1
    try:
        with open(path, "rb") as stream:
            stream.seek(offset, os.SEEK_SET)
            while True:
                yield from read_entries(stream)
                if monitor < 0:
                    return
                ready, _, _ = select.select([monitor, watch] if watch >= 0 else [monitor], [], [])
                if watch in ready:
                    os.read(watch, 65536)  # the events say only "written": reading the file tells what
                if monitor in ready:
                    os.close(monitor)
                    monitor = -1  # gone: what it wrote last is read on the next pass
    except FileNotFoundError:
        return
    finally:
        for fd in (monitor, watch):
            if fd >= 0:
                os.close(fd)


def _pidfd(pid: int, started: int) -> int:
    """A pidfd of the monitor, or -1 when it is no longer the process recorded (gone, or its pid reused)."""
    if pid <= 0:
        return -1
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return -1
    if start_time(pid) != started:
        os.close(fd)
        return -1
    return fd


_IN_MODIFY = 0x2
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000


def _watch(path: Path) -> int:
    """An inotify descriptor that turns readable when `path` is written to, or -1 (then the monitor's exit alone
    wakes the reader, which reads everything then)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK))
    if fd < 0:
        return -1
    if int(libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY)) < 0:
        os.close(fd)
        return -1
    return fd
