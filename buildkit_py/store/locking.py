"""Which process owns a temp file or folder under `<root>/tmp`, so that a sweep removes only what dead processes left.

A name carries `@<pid>.<start time>.` where the start time is the kernel's (clock ticks since boot, field 22 of
/proc/<pid>/stat). With it, a pid reused by a newer process does not make an old leftover look alive, and another
live `pybuild` process sharing the root never loses its temp dirs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = ["owner_alive", "owner_tag", "sweep_dead_owners"]

_OWNER_RE = re.compile(r"@(\d+)\.(\d+)\.")


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


_OWN_TAG: tuple[int, str] | None = None


def owner_tag() -> str:
    """`@<pid>.<start time>.` for this process; forked children get their own."""
    global _OWN_TAG
    pid = os.getpid()
    if _OWN_TAG is None or _OWN_TAG[0] != pid:
        _OWN_TAG = (pid, f"@{pid}.{_start_time(pid) or 0}.")
    return _OWN_TAG[1]


def owner_alive(name: str) -> bool:
    """Whether the process named in a temp name still runs. Names without an owner count as alive (never swept)."""
    match = _OWNER_RE.search(name)
    if match is None:
        return True
    pid, start = int(match.group(1)), int(match.group(2))
    current = _start_time(pid)
    if current is not None:
        return start == 0 or current == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # /proc is unavailable but the pid exists: we cannot tell a reuse apart, so keep it.
    return True


def sweep_dead_owners(folder: Path) -> list[Path]:
    """Remove entries of `folder` whose owner process is gone; returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if owner_alive(entry.name):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        removed.append(path)
    return removed
