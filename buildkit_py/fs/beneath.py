"""Paths beneath a directory, reached through descriptors and never through a symlink.

Every read of a tree someone else controls (the build context, a stage's rootfs read by COPY --from, an OCI layout
folder) goes through `open_beneath`. The kernel's openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS resolves the whole path in one call; where the call is missing (ENOSYS, or EPERM from a
seccomp filter), each directory on the way is opened in turn with O_PATH | O_NOFOLLOW | O_DIRECTORY relative to the
one before, which refuses the same paths. Either way a component that is, or has just become, a symlink fails with
ELOOP instead of leading elsewhere, so a path found by a walk is the path read later, or the read fails.

A path here is relative and "/"-separated; `..` and a leading "/" are refused (EXDEV, as openat2 does for an
escape) before any call, so the two ways agree on every input.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from types import TracebackType
from typing import Self

__all__ = ["FolderFiles", "RootDir", "open_beneath"]

_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS

# openat2's number in the generic syscall table, which these architectures share.
_SYS_OPENAT2 = 437
_GENERIC_TABLE = frozenset({"x86_64", "aarch64", "arm64", "armv7l", "i386", "i686", "ppc64le", "riscv64", "s390x"})

_STEP_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _load_syscall() -> ctypes._NamedFuncPointer | None:
    if os.uname().machine not in _GENERIC_TABLE:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function = libc.syscall
    function.restype = ctypes.c_long
    function.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    return function


_syscall = _load_syscall()
_openat2_missing = _syscall is None  # set for good on the first ENOSYS


def _components(relpath: str) -> list[str]:
    if relpath.startswith("/"):
        raise OSError(errno.EXDEV, "absolute path where a path beneath a root was expected", relpath)
    parts = [part for part in relpath.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EXDEV, "'..' in a path beneath a root", relpath)
    return parts


def _openat2(root_fd: int, path: str, flags: int, relpath: str) -> int | None:
    """The descriptor, or None when the kernel has no openat2 or a seccomp filter refuses the call."""
    global _openat2_missing
    assert _syscall is not None
    how = _OpenHow(flags, 0, _RESOLVE)
    encoded = os.fsencode(path)
    while True:
        fd = int(_syscall(_SYS_OPENAT2, root_fd, encoded, ctypes.byref(how), ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code == errno.EINTR:
            continue
        # A read-only open gets EPERM only from a seccomp filter (older container runtimes answer an unknown
        # call with EPERM rather than ENOSYS); opening the root itself tells the two apart.
        if code == errno.ENOSYS or (code == errno.EPERM and _refused(root_fd)):
            _openat2_missing = True
            return None
        raise OSError(code, os.strerror(code), relpath)


def _refused(root_fd: int) -> bool:
    assert _syscall is not None
    how = _OpenHow(os.O_PATH | os.O_CLOEXEC, 0, _RESOLVE)
    fd = int(_syscall(_SYS_OPENAT2, root_fd, b".", ctypes.byref(how), ctypes.sizeof(how)))
    if fd >= 0:
        os.close(fd)
        return False
    return ctypes.get_errno() == errno.EPERM


def _open_stepwise(root_fd: int, parts: list[str], flags: int, relpath: str) -> int:
    *directories, final = parts or ["."]
    fd = root_fd
    try:
        for part in directories:
            try:
                child = os.open(part, _STEP_FLAGS, dir_fd=fd)
            except NotADirectoryError:
                # O_DIRECTORY answers ENOTDIR for a symlink too; openat2 says ELOOP for one on the way.
                if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), relpath) from None
                raise
            if fd != root_fd:
                os.close(fd)
            fd = child
        return os.open(final, flags, dir_fd=fd)
    except OSError as error:
        error.filename = relpath
        raise
    finally:
        if fd != root_fd:
            os.close(fd)


def open_beneath(root_fd: int, relpath: str, flags: int) -> int:
    """A new descriptor of `relpath` below the directory `root_fd`, reached without following any symlink.

    `flags` are os.open's (nothing is created); O_NOFOLLOW and O_CLOEXEC are always added, so a final symlink fails
    with ELOOP unless `flags` has O_PATH, which gives a descriptor of the link itself. OSError as open(2) would
    raise it (ENOENT, ENOTDIR, ELOOP for a symlink on the way, EXDEV for `..` or an absolute path), its filename
    set to `relpath`."""
    parts = _components(relpath)
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    if not _openat2_missing:
        fd = _openat2(root_fd, "/".join(parts) or ".", flags, relpath)
        if fd is not None:
            return fd
    return _open_stepwise(root_fd, parts, flags, relpath)


class RootDir:
    """A directory held open by descriptor, and the reads beneath it, each through `open_beneath`.

    Opening the root itself follows symlinks (it is the folder the user named); nothing below it does. Every
    method raises OSError as `open_beneath` does, with the relative path as filename."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def open(self, relpath: str, flags: int) -> int:
        return open_beneath(self.fd, relpath, flags)

    def open_file(self, relpath: str) -> int:
        """A read-only descriptor of the regular file `relpath`; ELOOP, EISDIR or EINVAL when it is something else.

        O_NONBLOCK keeps the open of a FIFO swapped in from hanging; it changes nothing for a regular file."""
        fd = self.open(relpath, os.O_RDONLY | os.O_NONBLOCK)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
            raise OSError(code, "not a regular file", relpath)
        return fd

    def lstat(self, relpath: str) -> os.stat_result:
        fd = self.open(relpath, os.O_PATH)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def readlink(self, relpath: str) -> str:
        fd = self.open(relpath, os.O_PATH)
        try:
            return os.readlink("", dir_fd=fd)  # readlinkat(2) with an empty path reads the link fd refers to
        except OSError as error:
            error.filename = relpath
            raise
        finally:
            os.close(fd)

    def listdir(self, reldir: str) -> list[str]:
        fd = self.open(reldir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def scan(self, reldir: str) -> list[tuple[str, os.stat_result]]:
        """(name, lstat) of each entry of the directory `reldir`, sorted by name."""
        fd = self.open(reldir, os.O_RDONLY | os.O_DIRECTORY)
        found: list[tuple[str, os.stat_result]] = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    # DirEntry.stat is fstatat on `fd`, so it must run before the close.
                    try:
                        found.append((entry.name, entry.stat(follow_symlinks=False)))
                    except OSError as error:
                        error.filename = f"{reldir}/{entry.name}" if reldir else entry.name
                        raise
        finally:
            os.close(fd)
        found.sort(key=lambda item: item[0])
        return found


class FolderFiles:
    """Opens regular files beneath a `RootDir` one after another, holding the descriptor of the folder of the last.

    A walk reads files folder by folder, so each folder is opened once, beneath the root without following a
    symlink, and each file by its name in it with O_NOFOLLOW: the same component-by-component resolution as
    `open_beneath`, one directory open per folder instead of one path resolution per file. OSError as
    `RootDir.open_file` raises it, its filename set to the relative path."""

    def __init__(self, root: RootDir) -> None:
        self.root = root
        self._folder: str | None = None
        self._folder_fd = -1

    def open_file(self, relpath: str) -> int:
        folder, _, name = relpath.rpartition("/")
        try:
            if folder != self._folder:
                self.close()
                self._folder_fd = self.root.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                self._folder = folder
            if not name or name in (".", ".."):
                raise OSError(errno.EISDIR, "not a regular file", relpath)
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._folder_fd)
        except OSError as error:
            error.filename = relpath
            raise
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise OSError(errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL, "not a regular file", relpath)
        return fd

    def close(self) -> None:
        if self._folder_fd >= 0:
            os.close(self._folder_fd)
        self._folder, self._folder_fd = None, -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
