"""A cache mount's folder as a tar layer, and back.

Writing: steps write in the folder, and may be writing while it is read, so it is walked through directory
descriptors and nothing is opened through a symlink (a directory swapped for a link on the way is left out, never
followed). Directories, regular files, symlinks and hard links come out in the order of a depth-first walk that sorts
each directory's names by their bytes, with numeric owners, permission bits and whole-second mtimes, so an unchanged
folder gives the same bytes. Device nodes, fifos and sockets are left out and counted; xattrs are not written. The
folder itself has no entry: its owner and mode travel in the cache metadata.

Reading is the hostile side: `unpack_layer`'s rules (every entry created beneath the destination through descriptors,
never through a symlink; owners applied as root), and before anything of an entry is written it must be what the
writer writes: a directory, a regular file, a symlink or a hard link, with no xattrs and no whiteout name. Anything
else refuses the whole tar.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..digest import Digest, new_hasher
from ..errors import CacheExportError, LayerError
from ..layer.generate import LayerInfo
from ..layer.unpack import unpack_layer
from ..layer.whiteout import WHITEOUT_PREFIX

__all__ = ["FolderTar", "Sink", "unpack_folder_tar", "write_folder_tar"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
_XATTR_PAX_PREFIX = "SCHILY.xattr."
_GONE = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)  # removed, or swapped for a symlink or a file, while walked


@dataclass(frozen=True)
class FolderTar:
    """What `write_folder_tar` wrote."""

    diff_id: Digest  # sha256 of the tar
    size: int  # bytes of the tar
    content_size: int  # bytes of the regular files in it
    entries: int
    skipped: int  # device nodes, fifos and sockets left out


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


class _Writer:
    def __init__(self, out: Sink) -> None:
        self._out = out
        self._hasher: Any = new_hasher("sha256")
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._hasher.update(data)
        self._out.write(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest("sha256", self._hasher.hexdigest())


def _names_last_first(fd: int) -> list[str]:
    """The directory's names sorted by their bytes, last first (taken with pop())."""
    return sorted(os.listdir(fd), key=os.fsencode, reverse=True)


class _Walk:
    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.entries = 0
        self.skipped = 0
        self.content_size = 0
        self._first_name: dict[tuple[int, int], str] = {}

    def run(self, root_fd: int) -> None:
        # An explicit stack, not recursion: deep trees must not hit the recursion limit.
        stack: list[tuple[int, str, list[str]]] = [(os.dup(root_fd), "", _names_last_first(root_fd))]
        try:
            while stack:
                fd, prefix, names = stack[-1]
                if not names:
                    os.close(fd)
                    stack.pop()
                    continue
                name = names.pop()
                child = self._add(fd, name, prefix + name)
                if child is not None:
                    stack.append((child, prefix + name + "/", _names_last_first(child)))
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    def _add(self, parent_fd: int, name: str, rel: str) -> int | None:
        """Write the entry of one name; the open directory when its contents must follow."""
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
                self._header(rel, os.fstat(fd), tarfile.DIRTYPE)
                return fd
            if stat.S_ISREG(st.st_mode):
                self._file(parent_fd, name, rel)
            elif stat.S_ISLNK(st.st_mode):
                self._header(rel, st, tarfile.SYMTYPE, linkname=os.readlink(name, dir_fd=parent_fd))
            else:
                self.skipped += 1
        except OSError as error:
            if error.errno not in _GONE:
                raise
        return None

    def _file(self, parent_fd: int, name: str, rel: str) -> None:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # swapped for a fifo or a device since the stat
                self.skipped += 1
                return
            inode = (st.st_dev, st.st_ino)
            first = self._first_name.get(inode) if st.st_nlink > 1 else None
            if first is not None:
                self._header(rel, st, tarfile.LNKTYPE, linkname=first)
                return
            if st.st_nlink > 1:
                self._first_name[inode] = rel
            self._header(rel, st, tarfile.REGTYPE, size=st.st_size)
            self._copy(fd, rel, st.st_size)
            self.content_size += st.st_size
        finally:
            os.close(fd)

    def _header(self, rel: str, st: os.stat_result, kind: bytes, *, linkname: str = "", size: int = 0) -> None:
        info = tarfile.TarInfo(rel)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        info.linkname = linkname
        info.size = size
        self.writer.write(info.tobuf(tarfile.PAX_FORMAT, _ENCODING, _ERRORS))
        self.entries += 1

    def _copy(self, fd: int, rel: str, size: int) -> None:
        remaining = size
        while remaining:
            data = os.read(fd, min(remaining, _CHUNK))
            if not data:
                raise CacheExportError(f"{rel} shrank while it was exported (a step is writing the cache)")
            self.writer.write(data)
            remaining -= len(data)
        padding = -size % tarfile.BLOCKSIZE
        if padding:
            self.writer.write(bytes(padding))


def write_folder_tar(folder: Path, out: Sink) -> FolderTar:
    """Write the tar of `folder` (not followed if it is a symlink) to `out`. CacheExportError when a file shrank
    while it was read; OSError when the folder cannot be read."""
    writer = _Writer(out)
    walk = _Walk(writer)
    root_fd = os.open(folder, _DIR_FLAGS)
    try:
        walk.run(root_fd)
    finally:
        os.close(root_fd)
    writer.write(bytes(2 * tarfile.BLOCKSIZE))
    return FolderTar(writer.digest(), writer.size, walk.content_size, walk.entries, walk.skipped)


def _plain_entry(member: tarfile.TarInfo) -> None:
    """Refuse what `write_folder_tar` never writes."""
    if not (member.isdir() or member.isreg() or member.issym() or member.islnk()) or member.issparse():
        raise LayerError(f"cache mount entry {member.name!r} is not a directory, a file, a symlink or a hard link")
    if member.name.rstrip("/").rpartition("/")[2].startswith(WHITEOUT_PREFIX):
        raise LayerError(f"cache mount entry {member.name!r} has a whiteout's name")
    if any(key.startswith(_XATTR_PAX_PREFIX) for key in member.pax_headers):
        raise LayerError(f"cache mount entry {member.name!r} has xattrs")


def unpack_folder_tar(stream: BinaryIO, dest: Path) -> LayerInfo:
    """Unpack a cache mount's tar (any compression) into the empty folder `dest`; its diff_id is in the result.
    LayerError for a corrupt, truncated or hostile tar, or one holding anything `write_folder_tar` does not write."""
    return unpack_layer(stream, dest, allow_devices=False, check_entry=_plain_entry)
