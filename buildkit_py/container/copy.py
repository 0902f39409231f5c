"""`pybuild cp`: files between a container and the host. The container's tree is hostile: a path in it is resolved
as the container would (symlinks inside its root), and then every component is opened beneath the root by
descriptor, refusing symlinks, so a swap made while we copy fails (ELOOP) instead of leading out of the root."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from ..errors import ContainerError
from ..exec.rootpath import resolve_in_root
from ..fs.beneath import RootDir

__all__ = ["copy_from_container", "copy_into_container"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _relative(root: Path, container_path: str, follow_final: bool) -> str:
    resolved = resolve_in_root(root, container_path, follow_final=follow_final)
    return resolved.relative_to(root).as_posix() if resolved != root else ""


def _copy_out_fd(dir_fd: int, name: str, target: Path) -> None:
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(name, dir_fd=dir_fd), target)
    elif stat.S_ISDIR(info.st_mode):
        fd = os.open(name, _DIR, dir_fd=dir_fd)
        try:
            target.mkdir(exist_ok=True)
            for child in sorted(os.listdir(fd)):
                _copy_out_fd(fd, child, target / child)
        finally:
            os.close(fd)
    elif stat.S_ISREG(info.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as reader, open(target, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
    else:
        return
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(target, stat.S_IMODE(info.st_mode))
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def copy_from_container(root: Path, source: str, destination: Path) -> None:
    """`cp CONTAINER:SOURCE DESTINATION` (DESTINATION an existing folder: into it, under the source's name)."""
    relative = _relative(root, source, follow_final=source.endswith(("/", "/.")))
    content_only = source.endswith("/.")
    with RootDir(root) as tree:
        parent, _, name = relative.rpartition("/")
        try:
            parent_fd = tree.open(parent or ".", _DIR)
        except OSError as error:
            raise ContainerError(f"Could not find the file {source} in container: {error.strerror}") from None
        try:
            if not name:
                name = "."
            try:
                info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except OSError:
                raise ContainerError(f"Could not find the file {source} in container") from None
            if content_only and stat.S_ISDIR(info.st_mode):
                destination.mkdir(exist_ok=True)
                fd = os.open(name, _DIR, dir_fd=parent_fd)
                try:
                    for child in sorted(os.listdir(fd)):
                        _copy_out_fd(fd, child, destination / child)
                finally:
                    os.close(fd)
                return
            target = destination / (Path(source.rstrip("/")).name or "root") if destination.is_dir() else destination
            _copy_out_fd(parent_fd, name, target)
        finally:
            os.close(parent_fd)


def _copy_in(source: Path, dir_fd: int, name: str) -> None:
    info = os.lstat(source)
    if stat.S_ISLNK(info.st_mode):
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        os.symlink(os.readlink(source), name, dir_fd=dir_fd)
        return
    if stat.S_ISDIR(info.st_mode):
        try:
            os.mkdir(name, stat.S_IMODE(info.st_mode), dir_fd=dir_fd)
        except FileExistsError:
            pass
        fd = os.open(name, _DIR, dir_fd=dir_fd)  # refuses a symlink the container put there
        try:
            for child in sorted(os.listdir(source)):
                _copy_in(source / child, fd, child)
            os.chmod(fd, stat.S_IMODE(info.st_mode))
        finally:
            os.close(fd)
        return
    if stat.S_ISREG(info.st_mode):
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, stat.S_IMODE(info.st_mode), dir_fd=dir_fd)
        with open(source, "rb") as reader, os.fdopen(fd, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            os.chmod(writer.fileno(), stat.S_IMODE(info.st_mode))


def copy_into_container(root: Path, source: Path, destination: str) -> None:
    """`cp SOURCE CONTAINER:DESTINATION`."""
    if not os.path.lexists(source):
        raise ContainerError(f"lstat {source}: no such file or directory")
    relative = _relative(root, destination, follow_final=True)
    with RootDir(root) as tree:
        try:
            existing = tree.lstat(relative) if relative else os.lstat(root)
        except OSError:
            existing = None
        if existing is not None and stat.S_ISDIR(existing.st_mode) and not str(source).endswith("/."):
            parent, name = relative, source.name
        else:
            parent, _, name = relative.rpartition("/")
        try:
            parent_fd = tree.open(parent or ".", _DIR)
        except OSError as error:
            raise ContainerError(f"Could not find the file {destination} in container: {error.strerror}") from None
        try:
            if str(source).endswith("/.") and source.is_dir():
                for child in sorted(os.listdir(source)):
                    _copy_in(source / child, parent_fd if not name else _open_dir(parent_fd, name), child)
            else:
                _copy_in(source, parent_fd, name)
        finally:
            os.close(parent_fd)


def _open_dir(parent_fd: int, name: str) -> int:
    try:
        os.mkdir(name, 0o755, dir_fd=parent_fd)
    except FileExistsError:
        pass
    return os.open(name, _DIR, dir_fd=parent_fd)
