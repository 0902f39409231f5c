"""Turn a snapshot (a folder in overlayfs format) into an uncompressed layer tar, hashing it as it streams out.

Header conventions follow what Docker and BuildKit write (both use Go's archive/tar): ustar headers with the
file-type bits in the mode field, numeric uid/gid only (uname/gname empty, as umoci does), mtime truncated to whole
seconds, PAX records only when needed (long or non-ASCII names, xattrs), directories named `dir/`, no `./` prefix, no
entry for the root, and the archive closed by two zero blocks without padding to a 10 KiB record.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..digest import Digest, new_hasher
from ..errors import LayerError
from ..store.recipes import RecipeWriter
from .whiteout import (
    OPAQUE_MARKER,
    WHITEOUT_PREFIX,
    is_opaque,
    is_overlay_xattr,
    is_whiteout,
    unsupported_overlay_xattr,
)

__all__ = ["LayerInfo", "is_empty_snapshot", "layer_recipe", "write_layer_tar"]

BLOCK_SIZE = tarfile.BLOCKSIZE
COPY_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_WHITEOUT_PREFIX = WHITEOUT_PREFIX.encode()
_ZEROS = bytes(BLOCK_SIZE)
# Labels of the build host, not content of the image.
_SKIPPED_XATTRS = ("security.selinux",)
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


@dataclass(frozen=True)
class LayerInfo:
    """What a layer tar is: its diff_id (sha256 of the uncompressed tar bytes), its size in bytes, its entry count."""

    diff_id: Digest
    size: int
    entries: int


class _HashingWriter:
    """Writes through to out while feeding a sha256 hasher and counting bytes."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hasher: Any = new_hasher("sha256")
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._hasher.update(data)
        self._out.write(data)
        self.size += len(data)

    def content(self, rel: bytes, data: bytes | bytearray | memoryview) -> None:
        """Bytes of the file `rel` of the snapshot."""
        self.write(data)

    def digest(self) -> Digest:
        return Digest("sha256", self._hasher.hexdigest())


class _RecipeWriter(_HashingWriter):
    """Hashes the tar without writing it: headers and padding go to the recipe as they are, file content as a
    reference to the snapshot's file, which is where the bytes already are."""

    def __init__(self) -> None:
        self.recipe = RecipeWriter()
        self._hasher = new_hasher("sha256")
        self.size = 0
        self._file: bytes | None = None
        self._file_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._close_file()
        self._hasher.update(data)
        self.recipe.literal(data)
        self.size += len(data)

    def content(self, rel: bytes, data: bytes | bytearray | memoryview) -> None:
        if self._file != rel:
            self._close_file()
            self._file = rel
        self._hasher.update(data)
        self._file_size += len(data)
        self.size += len(data)

    def _close_file(self) -> None:
        if self._file is not None:
            self.recipe.file(self._file, self._file_size)
            self._file, self._file_size = None, 0

    def finish(self) -> bytes:
        self._close_file()
        return self.recipe.finish()


def is_empty_snapshot(snapshot: Path) -> bool:
    """True when the snapshot holds nothing, so its layer would have no entries (an empty RUN, a no-op step)."""
    with os.scandir(snapshot) as entries:
        return next(entries, None) is None


def write_layer_tar(snapshot: Path, out: BinaryIO, mtime_limit: int | None = None) -> LayerInfo:
    """Write the snapshot at `snapshot` to `out` as an uncompressed tar, returning its diff_id, size and entry count.

    With `mtime_limit` (SOURCE_DATE_EPOCH), every time later than it is written as it, so a layer made now from the
    same files is the same bytes as one made earlier or later (files older than the limit keep their time).

    Entries come in the order of a depth-first walk that sorts each directory's names by their bytes, a directory
    before its contents (the order of Go's filepath.Walk, which umoci and Docker use). Raises LayerError for a
    snapshot that cannot be expressed as a layer: a real file named `.wh.*`, or overlay redirect/metacopy xattrs.
    """
    writer = _HashingWriter(out)
    generator = _Generator(writer, mtime_limit)
    root = os.fsencode(snapshot)
    generator.walk(root)
    writer.write(bytes(2 * BLOCK_SIZE))
    return LayerInfo(diff_id=writer.digest(), size=writer.size, entries=generator.entries)


def layer_recipe(snapshot: Path, mtime_limit: int | None = None) -> tuple[LayerInfo, bytes]:
    """The layer write_layer_tar would write, without writing it: its LayerInfo, and a recipe (store/recipes.py)
    that rebuilds those exact bytes from the snapshot's files, which are read once here, to hash them."""
    writer = _RecipeWriter()
    generator = _Generator(writer, mtime_limit)
    generator.walk(os.fsencode(snapshot))
    writer.write(bytes(2 * BLOCK_SIZE))
    recipe = writer.finish()
    return LayerInfo(diff_id=writer.digest(), size=writer.size, entries=generator.entries), recipe


class _Generator:
    def __init__(self, writer: _HashingWriter, mtime_limit: int | None = None) -> None:
        self._writer = writer
        self._mtime_limit = mtime_limit
        self._buffer = bytearray(COPY_CHUNK)
        self._first_name_of_inode: dict[tuple[int, int], str] = {}
        self.entries = 0

    def walk(self, root: bytes) -> None:
        # An explicit stack of directory iterators, not recursion: deep trees must not hit the recursion limit.
        # Entries are read relative to their directory's descriptor, so no path is walked again for each of them;
        # only the deepest directory's is held open (a parent's is opened again when its child is done), so a deep
        # tree does not run out of descriptors.
        stack: list[tuple[bytes, bytes, Iterator[bytes]]] = []
        dir_fd = os.open(root, _DIR_FLAGS)
        try:
            stack.append((root, b"", iter(_sorted_names(dir_fd))))
            while stack:
                directory, rel_dir, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    os.close(dir_fd)
                    dir_fd = -1
                    if stack:
                        dir_fd = os.open(stack[-1][0], _DIR_FLAGS)
                    continue
                path = directory + b"/" + name
                rel = rel_dir + name
                child_fd = self._add(dir_fd, name, path, rel)
                if child_fd is not None:
                    os.close(dir_fd)
                    dir_fd = child_fd
                    stack.append((path, rel + b"/", iter(_sorted_names(child_fd))))
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)

    def _add(self, dir_fd: int, name: bytes, path: bytes, rel: bytes) -> int | None:
        """Write the entries for `name` in the directory `dir_fd` (at `path`); for a directory whose contents must
        follow, a descriptor of it (the caller closes it), else None."""
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if is_whiteout(st):
            self._write_whiteout(rel, name, st)
            return None
        if name.startswith(_WHITEOUT_PREFIX):
            raise LayerError(f"snapshot has a file named like a whiteout, which a layer cannot hold: {_text(rel)}")
        mode = st.st_mode
        fd = None
        if stat.S_ISDIR(mode):
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        elif stat.S_ISREG(mode) and st.st_size:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        try:
            self._add_open(dir_fd, name, path, rel, st, fd)
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        if fd is not None and not stat.S_ISDIR(mode):
            os.close(fd)
            return None
        return fd

    def _add_open(self, dir_fd: int, name: bytes, path: bytes, rel: bytes, st: os.stat_result, fd: int | None) -> None:
        """_add's entries, with `fd` open on a directory or a regular file that is not empty (else None)."""
        info = tarfile.TarInfo(_text(rel))
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = self._mtime(st)
        target = path if fd is None else fd
        xattr_names = _xattr_names(target)
        bad = unsupported_overlay_xattr(xattr_names)
        if bad is not None:
            raise LayerError(
                f"snapshot path {_text(rel)} has {bad}: its content lives in a lower dir "
                "(mount overlay with redirect_dir=off,metacopy=off)"
            )
        info.pax_headers = _xattr_records(target, xattr_names) if xattr_names else {}
        data_size = 0
        mode = st.st_mode
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            first = self._first_name_of_inode.get(key) if st.st_nlink > 1 else None
            if first is not None:
                info.type, info.linkname = tarfile.LNKTYPE, first
            else:
                if st.st_nlink > 1:
                    self._first_name_of_inode[key] = info.name
                info.type, info.size = tarfile.REGTYPE, st.st_size
                data_size = st.st_size
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.fsdecode(os.readlink(name, dir_fd=dir_fd))
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            raise LayerError(f"snapshot path {_text(rel)} is a socket or unknown file type; a layer cannot hold it")
        self._write_header(info, stat.S_IFMT(mode))
        if data_size:
            assert fd is not None
            self._copy_data(fd, rel, data_size)
        if info.type == tarfile.DIRTYPE and is_opaque(path, xattr_names):
            # Carries the directory's owner, mode and mtime, as Docker's overlay driver writes it.
            marker = tarfile.TarInfo(f"{info.name}/{OPAQUE_MARKER}")
            marker.mode, marker.uid, marker.gid, marker.mtime = info.mode, info.uid, info.gid, info.mtime
            self._write_header(marker, 0)

    def _mtime(self, st: os.stat_result) -> int:
        seconds = st.st_mtime_ns // 1_000_000_000
        return seconds if self._mtime_limit is None else min(seconds, self._mtime_limit)

    def _write_whiteout(self, rel: bytes, base: bytes, st: os.stat_result) -> None:
        if base.startswith(WHITEOUT_PREFIX.encode()):
            raise LayerError(f"snapshot has a whiteout for a name that is itself a whiteout: {_text(rel)}")
        parent = rel[: len(rel) - len(base)]
        # Owner, permissions and mtime of the device are carried over, as Docker does; they make the tar a
        # deterministic function of the snapshot and survive a round trip through unpack_layer.
        info = tarfile.TarInfo(_text(parent + WHITEOUT_PREFIX.encode() + base))
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = self._mtime(st)
        self._write_header(info, 0)

    def _write_header(self, info: tarfile.TarInfo, file_type_bits: int) -> None:
        block = _plain_ustar_header(info, file_type_bits | info.mode)
        if block is None:
            buf = info.tobuf(tarfile.PAX_FORMAT, _ENCODING, _ERRORS)
            self._writer.write(buf[:-BLOCK_SIZE])
            block = _go_style(buf[-BLOCK_SIZE:], file_type_bits | info.mode)
        self._writer.write(block)
        self.entries += 1

    def _copy_data(self, fd: int, rel: bytes, size: int) -> None:
        if size <= COPY_CHUNK:
            data = os.read(fd, size)
            if len(data) == size:
                self._writer.content(rel, data)
            else:  # a short read of a regular file: it shrank, or a signal came; read the rest the long way
                self._read_rest(fd, rel, size, data)
        else:
            self._read_rest(fd, rel, size, b"")
        padding = -size % BLOCK_SIZE
        if padding:
            self._writer.write(_ZEROS[:padding])

    def _read_rest(self, fd: int, rel: bytes, size: int, start: bytes) -> None:
        if start:
            self._writer.content(rel, start)
        view = memoryview(self._buffer)
        remaining = size - len(start)
        while remaining:
            count = os.readv(fd, [view[: min(remaining, COPY_CHUNK)]])
            if not count:
                raise LayerError(f"snapshot file {_text(rel)} shrank while its layer was written")
            self._writer.content(rel, view[:count])
            remaining -= count


_USTAR_MAGIC_AND_NAMES = b"ustar\x0000" + bytes(64)
_USTAR_TAIL = bytes(BLOCK_SIZE - 345)
_MAX_7_DIGITS = 8**7
_MAX_11_DIGITS = 8**11


def _plain_ustar_header(info: tarfile.TarInfo, full_mode: int) -> bytes | None:
    """The header block for an entry that needs no PAX record, as _go_style(tobuf(...)) would write it but in a
    fraction of the time (most entries of a layer take this path); None when PAX records are needed."""
    if info.pax_headers:
        return None
    name = info.name + "/" if info.type == tarfile.DIRTYPE else info.name
    if len(name) > 100 or len(info.linkname) > 100 or not name.isascii() or not info.linkname.isascii():
        return None
    if not (info.uid < _MAX_7_DIGITS and info.gid < _MAX_7_DIGITS and info.size < _MAX_11_DIGITS):
        return None
    if not (0 <= info.mtime < _MAX_11_DIGITS and info.devmajor < _MAX_7_DIGITS and info.devminor < _MAX_7_DIGITS):
        return None
    header = b"".join(
        (
            name.encode("ascii").ljust(100, b"\0"),
            b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (full_mode, info.uid, info.gid, info.size, int(info.mtime)),
            info.type,
            info.linkname.encode("ascii").ljust(100, b"\0"),
            _USTAR_MAGIC_AND_NAMES,
            b"%07o\0%07o\0" % (info.devmajor, info.devminor),
            _USTAR_TAIL,
        )
    )
    return b"%s%06o\0 %s" % (header[:148], sum(header), header[156:])


def _go_style(block: bytes, full_mode: int) -> bytes:
    """Rewrite a ustar header the way Go's archive/tar writes it: file-type bits in the mode field, device numbers
    always present, then a fresh checksum. tarfile writes only the permission bits and leaves devices blank."""
    header = bytearray(block)
    header[100:108] = b"%07o\0" % full_mode
    if header[329:345] == bytes(16):
        header[329:345] = b"0000000\0" * 2
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _sorted_names(dir_fd: int) -> list[bytes]:
    return sorted(map(os.fsencode, os.listdir(dir_fd)))


def _xattr_names(target: bytes | int) -> list[str]:
    """The xattr names of a path (never followed) or of an open descriptor."""
    try:
        if isinstance(target, int):
            return os.listxattr(target)
        return os.listxattr(target, follow_symlinks=False)
    except OSError as error:
        if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return []
        raise


def _xattr_records(target: bytes | int, names: list[str]) -> dict[str, str]:
    records: dict[str, str] = {}
    for name in sorted(names):
        if is_overlay_xattr(name) or name in _SKIPPED_XATTRS:
            continue
        try:
            if isinstance(target, int):
                value = os.getxattr(target, name)
            else:
                value = os.getxattr(target, name, follow_symlinks=False)
        except OSError as error:
            if error.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                continue
            raise
        # An empty PAX value means "unset", so an empty xattr cannot be carried (umoci skips it too).
        if value:
            records["SCHILY.xattr." + name] = value.decode(_ENCODING, _ERRORS)
    return records


def _text(name: bytes) -> str:
    return name.decode(_ENCODING, _ERRORS)
