"""Filling a new volume from the image, as Docker does: when a volume is mounted over a folder of the image and the
volume is empty, the folder's content (owners, modes, times, links) is copied in first.

The source is the container's root as mounted by its monitor, before any of the container's processes run; its
content is the image's (hostile), so nothing here follows a symlink: links are copied as links.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

__all__ = ["fill_volume"]


def _copy_metadata(source: os.stat_result, target: Path) -> None:
    os.lchown(target, source.st_uid, source.st_gid)
    if not stat.S_ISLNK(source.st_mode):
        os.chmod(target, stat.S_IMODE(source.st_mode))
    os.utime(target, ns=(source.st_atime_ns, source.st_mtime_ns), follow_symlinks=False)


def _copy_entry(source: Path, target: Path) -> None:
    info = os.lstat(source)
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        target.mkdir(exist_ok=True)
        with os.scandir(source) as entries:
            for entry in entries:
                _copy_entry(source / entry.name, target / entry.name)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(mode):
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with os.fdopen(fd, "rb", closefd=False) as reader, open(target, "xb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
        finally:
            os.close(fd)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(target)
    else:
        return  # devices and sockets are not copied into volumes
    _copy_metadata(info, target)


def fill_volume(source: Path, data: Path) -> None:
    """Copy the folder `source` into the volume folder `data` if `data` is empty and `source` a real folder."""
    try:
        info = os.lstat(source)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode) or any(data.iterdir()):
        return
    with os.scandir(source) as entries:
        for entry in entries:
            _copy_entry(source / entry.name, data / entry.name)
    _copy_metadata(info, data)
