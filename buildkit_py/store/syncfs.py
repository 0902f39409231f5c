"""syncfs(2): what a tree of new files needs to be on disk, in one call instead of one fsync per file.

A layer's snapshot is thousands of files written by a step; the store names it in its database only once they are
on disk, so that a crash never leaves a recorded layer whose files were lost. That is one sync per layer, as
container engines do when they commit one, never one per file. (Unmounting a step's overlay syncs its upper
filesystem too, but the step's sandbox reports its result before its mounts are gone, so that sync may still be
running when the layer is recorded.)"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

__all__ = ["sync_filesystem"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syncfs.argtypes = [ctypes.c_int]


def sync_filesystem(path: Path) -> None:
    """Write everything cached for the filesystem that holds `path` to disk (OSError when that fails)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), str(path))
    finally:
        os.close(fd)
