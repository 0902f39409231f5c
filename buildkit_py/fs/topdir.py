"""Tell ext2/3/4 that the folders made in a directory hold unrelated trees (`chattr +T`, FS_TOPDIR_FL).

ext4 places a new directory near its parent, and a new file in its folder's block group. A store's `tmp/` holds every
step's upper dir, so without the hint each step's files go to the groups around `tmp/`, where the files of the steps
and stores deleted before them were. On ext4 without a journal that is slow: for every inode it allocates, the kernel
skips, one inode-table lookup each, every free inode of the group that was freed in the last 60 s (360 s while its
inode-table block is dirty), so creating 10,000 files where 20,000 were just deleted costs seconds of kernel time.
With the hint, the Orlov allocator spreads each folder made in the directory to a group with few directories and
more free inodes than average, away from that (kernel `find_group_orlov`, the top-directory case)."""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

__all__ = ["mark_unrelated_trees"]

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000
_FLAGS = struct.Struct("=I")  # the kernel reads and writes an int, whatever the ioctl number's size says


def mark_unrelated_trees(directory: Path) -> bool:
    """Set FS_TOPDIR_FL on `directory`; whether it is set. Only a hint: a filesystem without it (tmpfs, xfs, btrfs,
    overlayfs), or a directory we may not change, is left as it is."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        (flags,) = _FLAGS.unpack(fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(_FLAGS.size)))
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, _FLAGS.pack(flags | _FS_TOPDIR_FL))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
