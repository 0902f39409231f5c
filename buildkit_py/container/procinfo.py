"""Is a recorded process still the one we started? A pid plus its start time (field 22 of /proc/PID/stat) names a
process for good: a reused pid has a later start time."""

from __future__ import annotations

__all__ = ["is_alive", "parent_of", "start_time"]


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot, or 0 when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return 0
    fields = text[text.rfind(b")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else 0


def is_alive(pid: int, started: int) -> bool:
    if pid <= 0:
        return False
    current = start_time(pid)
    if current == 0 or current != started:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return False
    return text[text.rfind(b")") + 2 :][:1] != b"Z"


def parent_of(pid: int) -> int:
    """The process's parent pid, or 0 when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return 0
    return int(text[text.rfind(b")") + 2 :].split()[1])
