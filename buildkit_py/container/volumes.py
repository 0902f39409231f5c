"""Filling a new volume from the image, as Docker does: when a volume is mounted over a folder of the image and the
volume is empty, the folder's content (owners, modes, times, links) is copied in first.

Both sides are hostile. The source is the container's root as its monitor mounted it, before any of the container's
processes run, so it holds what the image and the container's earlier runs left there; the volume may be in use by
another container right now. Everything is done through directory descriptors without following a symlink on
either side: the source is opened beneath the root (`fs.beneath`), entries are created with O_EXCL or mkdirat and
their owners, modes and times set through the new descriptors, links are copied as links. An entry someone else
made in the volume meanwhile is left as it is.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..exec.rootpath import resolve_in_root
from ..fs.beneath import RootDir

__all__ = ["fill_volume"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


def _copy_metadata(source: os.stat_result, fd: int) -> None:
    os.fchown(fd, source.st_uid, source.st_gid)
    os.fchmod(fd, stat.S_IMODE(source.st_mode))
    os.utime(fd, ns=(source.st_atime_ns, source.st_mtime_ns))


def _copy_file(source_dir: int, target_dir: int, name: str, info: os.stat_result) -> None:
    source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=source_dir)
    try:
        if not stat.S_ISREG(os.fstat(source).st_mode):
            return
        target = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=target_dir
        )
        try:
            while chunk := os.read(source, _CHUNK):
                os.write(target, chunk)
            _copy_metadata(info, target)
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_entry(source_dir: int, target_dir: int, name: str, info: os.stat_result) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(name, 0o700, dir_fd=target_dir)
        source = os.open(name, _DIR, dir_fd=source_dir)
        try:
            target = os.open(name, _DIR, dir_fd=target_dir)
            try:
                _copy_tree(source, target)
                _copy_metadata(info, target)
            finally:
                os.close(target)
        finally:
            os.close(source)
    elif stat.S_ISREG(mode):
        _copy_file(source_dir, target_dir, name, info)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=source_dir), name, dir_fd=target_dir)
        os.chown(name, info.st_uid, info.st_gid, dir_fd=target_dir, follow_symlinks=False)
        os.utime(name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=target_dir, follow_symlinks=False)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(name, 0o600, dir_fd=target_dir)
        fifo = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=target_dir)
        try:
            _copy_metadata(info, fifo)
        finally:
            os.close(fifo)
    # devices and sockets are not copied into volumes


def _copy_tree(source_dir: int, target_dir: int) -> None:
    with os.scandir(source_dir) as entries:
        listed = [(entry.name, entry.stat(follow_symlinks=False)) for entry in entries]
    for name, info in listed:
        try:
            _copy_entry(source_dir, target_dir, name, info)
        except FileExistsError:
            continue  # made meanwhile by another container using the volume: theirs


def fill_volume(root: Path, container_path: str, data: Path) -> None:
    """Copy the container's folder `container_path` (under its root `root`) into the volume folder `data`, if the
    volume is empty and the path is a folder."""
    target = os.open(data, _DIR)
    try:
        if os.listdir(target):
            return
        relative = resolve_in_root(root, container_path).relative_to(root).as_posix()
        with RootDir(root) as tree:
            try:
                source = tree.open(relative, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return  # nothing to copy: no such folder in the image
                raise
            try:
                _copy_tree(source, target)
                _copy_metadata(os.fstat(source), target)
            finally:
                os.close(source)
    finally:
        os.close(target)
