"""`pybuild cp` as Docker does it: every copy is a tar stream, written from a tree and extracted into another.

`write_archive` walks a tree (the container's, or a local path copied in) through directory descriptors, never
following a symlink below the source, and writes Docker's entries: the source under its own name (or `rename`), a
folder's content under `.` for `SRC/.`, hard links as links, owners, modes and times as they are. `extract_archive`
extracts a stream into a folder of a tree as Docker's untar chrooted in the container's root does: names are cleaned
inside the folder, and a symlink met on the way resolves inside the tree's root, never out of it (paths.py: resolved,
then opened beneath the root's descriptor with no symlink followed, so one swapped in meanwhile fails instead). Both sides are hostile: a running
container changes its tree while we read it, and a tar on stdin says whatever it likes.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ContainerError
from ..exec.rootpath import resolve_in_root
from ..fs.beneath import RootDir
from ..gostring import go_clean
from .paths import open_in_root

__all__ = ["Owner", "SourceEntry", "extract_archive", "source_entry", "write_archive"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_WHITEOUT_META = ".wh..wh."


@dataclass(frozen=True)
class Owner:
    """The uid and gid every extracted entry gets (`cp -a` into a container whose config names a user)."""

    uid: int
    gid: int


@dataclass(frozen=True)
class SourceEntry:
    """Where a copy's source is in its tree: the folder holding it and its name there (relative, "" for the tree
    itself), and what it is."""

    parent: str
    name: str
    info: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


def source_entry(root: Path, path: str, follow_link: bool) -> SourceEntry:
    """The source `path` in the tree `root`, its symlinks resolved inside it (the last one too with `follow_link`,
    or a trailing `/` or `/.`); FileNotFoundError when there is nothing there."""
    follow = follow_link or path.endswith(("/", "/."))
    resolved = resolve_in_root(root, path, follow_final=follow)
    relative = resolved.relative_to(root).as_posix() if resolved != root else ""
    parent, _, name = relative.rpartition("/")
    with RootDir(root) as tree:
        info = tree.lstat(relative or ".")
    if follow and stat.S_ISLNK(info.st_mode):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)  # a link left dangling
    return SourceEntry(parent, name, info)


# -- writing ------------------------------------------------------------------------------------------------------


class _Exactly:
    """`size` bytes of an open file, padded with zeros or cut short: a running container may change the file between
    its header and its data, and the tar must stay well-formed."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = os.read(self._fd, want) if want else b""
        if len(data) < want:
            data += b"\0" * (want - len(data))
            self._left = want - len(data)
        self._left -= len(data)
        return data


class _Writer:
    def __init__(self, tar: tarfile.TarFile, opaque: frozenset[str]) -> None:
        self.tar = tar
        self.opaque = opaque
        self.linked: dict[tuple[int, int], str] = {}

    def entry(self, dir_fd: int, name: str, archive_name: str, info: os.stat_result, relpath: str) -> None:
        header = tarfile.TarInfo(archive_name)
        header.mode = stat.S_IMODE(info.st_mode)
        header.uid, header.gid = info.st_uid, info.st_gid
        header.mtime = int(info.st_mtime)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            header.type = tarfile.DIRTYPE
            header.name = archive_name.rstrip("/") + "/"
            self.tar.addfile(header)
            if relpath in self.opaque:
                return
            fd = os.open(name, _DIR, dir_fd=dir_fd)
            try:
                with os.scandir(fd) as entries:
                    children = sorted((entry.name, entry.stat(follow_symlinks=False)) for entry in entries)
                for child, child_info in children:
                    self.entry(
                        fd, child, f"{archive_name.rstrip('/')}/{child}", child_info, f"{relpath}/{child}".lstrip("/")
                    )
            finally:
                os.close(fd)
        elif stat.S_ISREG(mode):
            key = (info.st_dev, info.st_ino)
            if info.st_nlink > 1 and key in self.linked:
                header.type, header.linkname = tarfile.LNKTYPE, self.linked[key]
                self.tar.addfile(header)
                return
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                current = os.fstat(fd)
                if not stat.S_ISREG(current.st_mode):
                    return  # swapped for something else while we walked
                header.size = current.st_size
                if info.st_nlink > 1:
                    self.linked.setdefault(key, archive_name)
                self.tar.addfile(header, _Exactly(fd, current.st_size))
            finally:
                os.close(fd)
        elif stat.S_ISLNK(mode):
            header.type, header.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
            self.tar.addfile(header)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            header.type = (
                tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE if stat.S_ISBLK(mode) else tarfile.FIFOTYPE
            )
            header.devmajor, header.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
            self.tar.addfile(header)
        # sockets are left out, as Go's tar writer leaves them


def write_archive(
    root: Path, source: SourceEntry, out: BinaryIO, name: str, opaque: frozenset[str] = frozenset()
) -> None:
    """A tar stream of `source` (found by `source_entry` in `root`) on `out`, its top entry called `name` ("." for a
    folder's content). Folders in `opaque` (paths relative to `root`) are written without what they hold."""
    relpath = f"{source.parent}/{source.name}".strip("/")
    with RootDir(root) as tree, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        parent_fd = tree.open(source.parent or ".", _DIR)
        try:
            _Writer(tar, opaque).entry(parent_fd, source.name or ".", name, source.info, relpath)
        finally:
            os.close(parent_fd)


# -- extracting ---------------------------------------------------------------------------------------------------


def _existing(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _set_owner_mode_times(fd: int, member: tarfile.TarInfo, owner: Owner | None) -> None:
    os.fchown(fd, *(member.uid, member.gid) if owner is None else (owner.uid, owner.gid))
    os.fchmod(fd, stat.S_IMODE(member.mode))
    os.utime(fd, ns=(int(member.mtime * 1e9),) * 2)


class _Extractor:
    def __init__(self, root_fd: int, root: Path, folder: str, tar: tarfile.TarFile, owner: Owner | None) -> None:
        self.root_fd = root_fd
        self.root = root  # the same tree by path, to resolve symlinks inside it
        self.folder = folder.rstrip("/")
        self.tar = tar
        self.owner = owner
        self.folders: list[tuple[str, tarfile.TarInfo]] = []

    def parent(self, relpath: str, make: bool = True) -> int:
        return open_in_root(self.root_fd, self.root, f"{self.folder}/{relpath}", make="dir" if make else None)

    def member(self, member: tarfile.TarInfo) -> None:
        relpath = go_clean("/" + member.name).lstrip("/")
        if not relpath or relpath.startswith(_WHITEOUT_META):
            return
        parent, _, name = relpath.rpartition("/")
        dir_fd = self.parent(parent)
        try:
            existing = _existing(dir_fd, name)
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode) != member.isdir():
                    what = "directory" if stat.S_ISDIR(existing.st_mode) else "non-directory"
                    other = "directory" if member.isdir() else "non-directory"
                    raise ContainerError(f'cannot overwrite {what} "/{relpath}" with {other} "{member.name}"')
                if not member.isdir():
                    os.unlink(name, dir_fd=dir_fd)
            self.create(dir_fd, name, relpath, member, existing is not None)
        finally:
            os.close(dir_fd)

    def create(self, dir_fd: int, name: str, relpath: str, member: tarfile.TarInfo, exists: bool) -> None:
        uid, gid = (member.uid, member.gid) if self.owner is None else (self.owner.uid, self.owner.gid)
        if member.isdir():
            if not exists:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            fd = os.open(name, _DIR, dir_fd=dir_fd)
            try:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, stat.S_IMODE(member.mode))
            finally:
                os.close(fd)
            self.folders.append((relpath, member))
        elif member.isreg():
            source = self.tar.extractfile(member)
            assert source is not None
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
            )
            try:
                while chunk := source.read(_CHUNK):
                    os.write(fd, chunk)
                _set_owner_mode_times(fd, member, self.owner)
            finally:
                os.close(fd)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=dir_fd)
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            mtime = int(member.mtime * 1e9)
            os.utime(name, ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
        elif member.islnk():
            target = go_clean("/" + member.linkname).lstrip("/")
            target_parent, _, target_name = target.rpartition("/")
            target_fd = self.parent(target_parent, make=False)
            try:
                os.link(target_name, name, src_dir_fd=target_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            finally:
                os.close(target_fd)
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=dir_fd)
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                if not stat.S_ISLNK(os.fstat(node).st_mode):
                    os.chmod(f"/proc/self/fd/{node}", stat.S_IMODE(member.mode))  # the node itself
            finally:
                os.close(node)
        # other types (GNU sparse continuations, ...) are skipped, as Go's tar reader does

    def finish(self) -> None:
        """Folder times last: what was extracted into them changed them."""
        for relpath, member in reversed(self.folders):
            try:
                fd = open_in_root(self.root_fd, self.root, f"{self.folder}/{relpath}", make=None)
            except OSError:
                continue  # replaced meanwhile by the container: not ours to touch
            try:
                mtime = int(member.mtime * 1e9)
                os.utime(f"/proc/self/fd/{fd}", ns=(mtime, mtime))  # the folder the descriptor holds
            finally:
                os.close(fd)


def extract_archive(root: Path, folder: str, stream: BinaryIO, owner: Owner | None = None) -> None:
    """Extract the tar `stream` into `folder` (a path inside the tree `root`, which must be a folder there).
    ContainerError for a bad archive, or an entry that cannot be placed."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise ContainerError(f"cannot extract into {root}: {error.strerror}") from None
    try:
        with tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape") as tar:
            extractor = _Extractor(root_fd, root, folder, tar, owner)
            for member in tar:
                extractor.member(member)
            extractor.finish()
    except (OSError, tarfile.TarError, EOFError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        where = f": {error.filename}" if isinstance(error, OSError) and error.filename else ""
        raise ContainerError(f"Error processing tar file: {detail.lower()}{where}") from None
    finally:
        os.close(root_fd)
