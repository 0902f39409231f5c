"""A path in a tree a hostile container controls, opened the way runc's securejoin does: resolved as the container
would resolve it (its symlinks followed, inside the root), then opened from the root's descriptor one component at a
time without following any symlink (fs/beneath.py), folders that are missing made with mkdirat on the way. A
component that is, or has just become, a symlink fails with ELOOP instead of leading out of the root.

Used for mount targets (mounts.py) and for what `cp` writes into a container (archive.py).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..exec.rootpath import resolve_in_root
from ..fs.beneath import open_beneath

__all__ = ["open_in_root"]

_DIR = os.O_PATH | os.O_DIRECTORY


def _relative(root: Path, container_path: str) -> list[str]:
    """The components of `container_path` after the container's symlinks, followed inside `root`."""
    resolved = resolve_in_root(root, container_path)
    return list(resolved.relative_to(root).parts)


def _refuse_link(fd: int, container_path: str) -> None:
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), container_path)


def open_in_root(root_fd: int, root: Path, container_path: str, make: str | None = "dir") -> int:
    """An O_PATH descriptor of `container_path` beneath the root (`root` names the same folder as `root_fd`), made
    when missing (`make`: "dir", "file", or None to fail with ENOENT). OSError (ELOOP for a symlink, ENOTDIR, ...)
    when the path cannot be reached without leaving the root."""
    parts = _relative(root, container_path)
    fd = open_beneath(root_fd, ".", _DIR)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                child = open_beneath(fd, part, os.O_PATH if last else _DIR)
            except FileNotFoundError:
                if make is None:
                    raise
                child = _make(fd, part, "file" if last and make == "file" else "dir")
            if last:
                _refuse_link(child, container_path)
            os.close(fd)
            fd = child
        return fd
    except OSError as error:
        os.close(fd)
        error.filename = container_path
        raise


def _make(dir_fd: int, name: str, kind: str) -> int:
    """Create `name` in `dir_fd` (or find what a racing process made) and open it, following no symlink."""
    if kind == "file":
        try:
            created = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
            )
        except FileExistsError:
            return open_beneath(dir_fd, name, os.O_PATH)
        os.close(created)
        return open_beneath(dir_fd, name, os.O_PATH)
    try:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    except FileExistsError:
        pass
    return open_beneath(dir_fd, name, _DIR)
