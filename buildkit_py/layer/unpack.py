"""Unpack a layer tar, which is hostile input, into a new folder in overlayfs snapshot format.

Every entry is created relative to a directory file descriptor reached from dest one component at a time with
O_NOFOLLOW, so no name, `..`, absolute path or symlink in the tar can place anything outside dest. Symlinks are
created as given and never followed while unpacking. tarfile only parses the stream here; it never extracts.

On LayerError the folder is left half-written: the caller deletes dest (it is meant to be a fresh folder that is
renamed into place only after unpack_layer returns).
"""

from __future__ import annotations

import errno
import io
import logging
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal, Self, cast, overload

import zstandard

from ..digest import Digest, new_hasher
from ..errors import LayerError
from .compression import open_decompressed
from .generate import COPY_CHUNK, LayerInfo
from .tarstream import CheckedTarInfo, ForwardReader
from .whiteout import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX, is_overlay_xattr, is_whiteout, make_whiteout

__all__ = ["clean_entry_name", "unpack_layer"]

log = logging.getLogger(__name__)

_XATTR_PAX_PREFIX = "SCHILY.xattr."
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_CACHED_DIRS = 64


class _HashingReader(ForwardReader):
    """The tar stream as tarfile sees it: reads, and the reads that seeking forward makes, feed a sha256 hasher."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__(source)
        self._hasher: Any = new_hasher("sha256")

    def _read_some(self, size: int) -> bytes:
        data = super()._read_some(size)
        self._hasher.update(data)
        return data

    def drain(self) -> None:
        """Hash whatever follows the end-of-archive blocks: the diff_id covers the whole stream."""
        while self._read_some(COPY_CHUNK):
            pass

    def digest(self) -> Digest:
        return Digest("sha256", self._hasher.hexdigest())


def unpack_layer(
    stream: BinaryIO,
    dest: Path,
    *,
    allow_devices: bool | None = None,
    check_entry: Callable[[tarfile.TarInfo], None] | None = None,
) -> LayerInfo:
    """Unpack the layer tar read from stream (plain, or compressed with gzip, zstd, bzip2 or xz) into dest.

    dest must be an existing empty folder. Whiteouts `.wh.<name>` become character devices 0:0, `.wh..wh..opq` makes
    its directory opaque (trusted.overlay.opaque=y). Later entries replace earlier ones at the same path. Device nodes
    are created only when allow_devices (default: running as root) and skipped with a warning otherwise. Owners are
    applied when running as root. Returns the diff_id (sha256 of the uncompressed tar), its size and entry count.
    Raises LayerError for a corrupt, truncated or hostile tar; the caller then deletes dest. `check_entry` sees each
    entry before anything of it is written, and raises LayerError to refuse the tar (a narrower kind of tar).
    """
    if allow_devices is None:
        allow_devices = os.geteuid() == 0
    if any(os.scandir(dest)):
        raise LayerError(f"layer destination {dest} is not empty")
    reader = _HashingReader(open_decompressed(stream))
    unpacker = _Unpacker(dest, allow_devices, check_entry)
    try:
        archive = _open_tar(reader)
        if archive is None:  # an empty stream is an empty layer, as Go's archive/tar reads it
            return LayerInfo(diff_id=reader.digest(), size=0, entries=0)
        with archive:
            while (member := archive.next()) is not None:
                unpacker.add(member, archive)
                # tarfile keeps every member it has read; a layer can have millions.
                archive.members.clear()  # type: ignore[attr-defined]
        unpacker.finish()
        reader.drain()
    except tarfile.TarError as error:
        raise LayerError(f"layer tar is corrupt or truncated after {unpacker.entries} entries: {error}") from error
    except (EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as error:
        raise LayerError(f"layer is truncated or its compression is corrupt: {error}") from error
    except OSError as error:
        raise LayerError(f"cannot unpack layer entry {unpacker.current!r}: {error}") from error
    finally:
        unpacker.close()
    return LayerInfo(diff_id=reader.digest(), size=reader.size, entries=unpacker.entries)


# Part of tarfile since Python 3.2 but missing from typeshed; named here also because fromtarfile's parameter,
# named as in tarfile, hides the module.
_TruncatedHeaderError: type[Exception] = tarfile.TruncatedHeaderError  # type: ignore[attr-defined]
_InvalidHeaderError: type[Exception] = tarfile.InvalidHeaderError  # type: ignore[attr-defined]


class _CheckedTarInfo(CheckedTarInfo):
    """tarfile takes a truncated or garbled header after the first one for the end of the archive; Go's archive/tar
    (and so Docker) fails there, and so do we. A zero block or the end of the stream still ends the archive."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile)
        except _TruncatedHeaderError as error:
            raise LayerError(f"layer tar is truncated inside a header: {error}") from error
        except _InvalidHeaderError as error:
            raise LayerError(f"layer tar has an invalid header: {error}") from error


def _open_tar(reader: _HashingReader) -> tarfile.TarFile | None:
    try:
        stream = cast(BinaryIO, reader)
        return tarfile.open(fileobj=stream, mode="r:", tarinfo=_CheckedTarInfo, encoding=_ENCODING, errors=_ERRORS)
    except tarfile.ReadError as error:
        if reader.size == 0:
            return None
        raise LayerError(f"layer is not a valid tar: {error}") from error


def clean_entry_name(name: str) -> str:
    """The entry's path relative to dest, with `.` and empty parts dropped and a leading `/` ignored (as Docker
    and containerd place absolute names under the root). A `..` that climbs above the root is refused."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise LayerError(f"layer entry {name!r} points outside the layer root")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _mtime_ns(member: tarfile.TarInfo) -> int:
    # The PAX record keeps the exact decimal; member.mtime went through a float.
    text = member.pax_headers.get("mtime")
    if text is not None:
        try:
            return int(Decimal(text) * 1_000_000_000)
        except ArithmeticError as error:
            raise LayerError(f"layer entry {member.name!r} has an invalid mtime {text!r}") from error
    return int(member.mtime) * 1_000_000_000


class _Unpacker:
    def __init__(self, dest: Path, allow_devices: bool, check: Callable[[tarfile.TarInfo], None] | None) -> None:
        self._root_fd = os.open(dest, _DIR_FLAGS)
        self._allow_devices = allow_devices
        self._check = check
        self._as_root = os.geteuid() == 0
        self._dir_fds: dict[str, int] = {}
        # Directory permissions and mtimes wait until the end: writing the contents would change the mtime, and a
        # read-only directory could not be filled.
        self._deferred_dirs: dict[str, tuple[int, int]] = {}
        self._buffer = bytearray(COPY_CHUNK)
        self.entries = 0
        self.current = ""

    def close(self) -> None:
        for fd in self._dir_fds.values():
            os.close(fd)
        self._dir_fds.clear()
        os.close(self._root_fd)

    def add(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        self.entries += 1
        self.current = member.name
        if self._check is not None:
            self._check(member)
        rel = clean_entry_name(member.name)
        if rel == "":
            if not member.isdir():
                raise LayerError(f"layer entry {member.name!r} names the root but is not a directory")
            self._set_owner_and_xattrs(self._root_fd, member)
            self._deferred_dirs[""] = (member.mode & 0o7777, _mtime_ns(member))
            return
        parent, _, base = rel.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            self._add_whiteout(parent, base, member)
            return
        parent_fd = self._open_dir(parent, create=True)
        if member.issparse():
            raise LayerError(f"layer entry {member.name!r} is a GNU sparse file, which layers do not use")
        if member.isdir():
            self._add_dir(parent_fd, base, rel, member)
        elif member.isreg():
            self._add_file(parent_fd, base, rel, member, archive)
        elif member.islnk():
            self._add_hardlink(parent, base, rel, member)
        elif member.issym():
            self._replace(parent_fd, base, rel)
            os.symlink(member.linkname, base, dir_fd=parent_fd)
            self._set_path_metadata(parent_fd, base, member, chmod=False)
        elif member.isfifo():
            self._replace(parent_fd, base, rel)
            os.mkfifo(base, 0o600, dir_fd=parent_fd)
            self._set_path_metadata(parent_fd, base, member)
        elif member.ischr() or member.isblk():
            if not self._allow_devices:
                log.warning("layer entry %r: device node skipped (devices not allowed)", member.name)
                return
            self._replace(parent_fd, base, rel)
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent_fd)
            self._set_path_metadata(parent_fd, base, member)
        else:
            raise LayerError(f"layer entry {member.name!r} has unsupported type {member.type!r}")

    def finish(self) -> None:
        for rel in sorted(self._deferred_dirs, key=lambda path: path.count("/"), reverse=True):
            mode, mtime_ns = self._deferred_dirs[rel]
            fd = self._open_dir(rel, create=False)
            if fd is None:
                continue
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))

    def _add_whiteout(self, parent: str, base: str, member: tarfile.TarInfo) -> None:
        parent_fd = self._open_dir(parent, create=True)
        if base == OPAQUE_MARKER:
            os.setxattr(parent_fd, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs); Docker skips it too
        target = base[len(WHITEOUT_PREFIX) :]
        if target in ("", ".", ".."):
            raise LayerError(f"layer entry {member.name!r} is a whiteout for an invalid name")
        self._replace(parent_fd, target, f"{parent}/{target}" if parent else target)
        make_whiteout(target, parent_fd)
        self._set_path_metadata(parent_fd, target, member, xattrs=False)

    def _add_dir(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo) -> None:
        previous = self._replace(parent_fd, base, rel, keep_dir=True)
        if previous is None or not stat.S_ISDIR(previous.st_mode):
            os.mkdir(base, 0o700, dir_fd=parent_fd)
        fd = self._open_dir(rel, create=False)
        assert fd is not None
        self._set_owner_and_xattrs(fd, member)
        if previous is not None and is_whiteout(previous):
            # Deleted, then created again in the same layer: nothing from below may show through.
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        self._deferred_dirs[rel] = (member.mode & 0o7777, _mtime_ns(member))

    def _add_file(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        self._replace(parent_fd, base, rel)
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent_fd)
        try:
            source = cast(io.BufferedReader, archive.extractfile(member))
            view = memoryview(self._buffer)
            while count := source.readinto(view):
                written = 0
                while written < count:
                    written += os.write(fd, view[written:count])
            self._set_owner_and_xattrs(fd, member)
            os.fchmod(fd, member.mode & 0o7777)
            mtime_ns = _mtime_ns(member)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)

    def _add_hardlink(self, parent: str, base: str, rel: str, member: tarfile.TarInfo) -> None:
        target = clean_entry_name(member.linkname)
        if target == rel:
            return
        self._replace(self._open_dir(parent, create=True), base, rel)
        target_parent, _, target_base = target.rpartition("/")
        cached_fd = self._open_dir(target_parent, create=False) if target else None
        if cached_fd is None:
            raise self._bad_hardlink(member)
        # Our own copy: opening the link's parent below may evict the cached descriptor.
        target_fd = os.dup(cached_fd)
        try:
            parent_fd = self._open_dir(parent, create=True)
            try:
                target_stat = os.stat(target_base, dir_fd=target_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise self._bad_hardlink(member) from None
            if not stat.S_ISREG(target_stat.st_mode):
                raise self._bad_hardlink(member)
            os.link(target_base, base, src_dir_fd=target_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        finally:
            os.close(target_fd)

    @staticmethod
    def _bad_hardlink(member: tarfile.TarInfo) -> LayerError:
        return LayerError(
            f"layer entry {member.name!r} is a hard link to {member.linkname!r}, "
            "which is not a regular file earlier in this layer"
        )

    def _replace(self, parent_fd: int, base: str, rel: str, *, keep_dir: bool = False) -> os.stat_result | None:
        """Remove what an earlier entry put at rel (a directory with all its contents); keep a directory when
        keep_dir, since a directory entry over a directory only updates its metadata. Returns what was there."""
        try:
            previous = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if keep_dir and stat.S_ISDIR(previous.st_mode):
            return previous
        self._forget(rel)
        if stat.S_ISDIR(previous.st_mode):
            shutil.rmtree(base, dir_fd=parent_fd)
        else:
            os.unlink(base, dir_fd=parent_fd)
        return previous

    def _forget(self, rel: str) -> None:
        prefix = rel + "/"
        for path in [path for path in self._dir_fds if path == rel or path.startswith(prefix)]:
            os.close(self._dir_fds.pop(path))
        for path in [path for path in self._deferred_dirs if path == rel or path.startswith(prefix)]:
            del self._deferred_dirs[path]

    @overload
    def _open_dir(self, rel: str, *, create: Literal[True]) -> int: ...

    @overload
    def _open_dir(self, rel: str, *, create: bool) -> int | None: ...

    def _open_dir(self, rel: str, *, create: bool) -> int | None:
        """A descriptor of the directory rel inside dest, reached without following any symlink. Missing directories
        are created (0755, like Docker's implicit parents) when create, else None is returned."""
        if rel == "":
            return self._root_fd
        cached = self._dir_fds.get(rel)
        if cached is not None:
            return cached
        missing: list[str] = []
        known = rel
        fd = None
        while fd is None:
            known, _, part = known.rpartition("/")
            missing.append(part)
            fd = self._root_fd if known == "" else self._dir_fds.get(known)
        path = known
        for part in reversed(missing):
            path = f"{path}/{part}" if path else part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    if not create:
                        return None
                    raise LayerError(
                        f"layer entry {self.current!r} lies under {path!r}, which is a symlink or not a directory"
                    ) from error
                raise
            if len(self._dir_fds) >= _MAX_CACHED_DIRS:
                self._drop_cache(keep=path.rpartition("/")[0])
            self._dir_fds[path] = child
            fd = child
        return fd

    def _drop_cache(self, keep: str) -> None:
        # Keep the chain of ancestors still in use by the caller; the others are cheap to open again.
        ancestors = set()
        while keep:
            ancestors.add(keep)
            keep = keep.rpartition("/")[0]
        for path in [path for path in self._dir_fds if path not in ancestors]:
            os.close(self._dir_fds.pop(path))

    def _set_owner_and_xattrs(self, fd: int, member: tarfile.TarInfo) -> None:
        if self._as_root:
            os.fchown(fd, member.uid, member.gid)
        self._set_xattrs(fd, member, follow_symlinks=True)

    def _set_path_metadata(
        self, parent_fd: int, base: str, member: tarfile.TarInfo, *, chmod: bool = True, xattrs: bool = True
    ) -> None:
        """Owner, mode, xattrs and mtime of a symlink, fifo, device or whiteout just created at base."""
        if self._as_root:
            os.chown(base, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
        if chmod:  # never a symlink here, so following is harmless; Linux has no lchmod
            os.chmod(base, member.mode & 0o7777, dir_fd=parent_fd)
        if xattrs:
            # setxattr has no dir_fd form; the /proc link names exactly the directory held open.
            self._set_xattrs(f"/proc/self/fd/{parent_fd}/{base}", member, follow_symlinks=False)
        mtime_ns = _mtime_ns(member)
        os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)

    def _set_xattrs(self, target: int | str, member: tarfile.TarInfo, *, follow_symlinks: bool) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PAX_PREFIX):
                continue
            name = key[len(_XATTR_PAX_PREFIX) :]
            if is_overlay_xattr(name):
                # A tar must not steer overlayfs (redirects, opaque dirs) except through whiteout entries.
                log.warning("layer entry %r: overlay xattr %s ignored", member.name, name)
                continue
            try:
                os.setxattr(target, name, value.encode(_ENCODING, _ERRORS), follow_symlinks=follow_symlinks)
            except OSError as error:
                # As Docker: a filesystem or a user that cannot hold the xattr loses it, with a warning.
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                log.warning("layer entry %r: xattr %s not set: %s", member.name, name, error.strerror)
