"""Hostile tar streams as tarfile reads them: each header checked before anything in it reaches a system call that
cannot take it, and a stream that ends where a header said more data would follow."""

from __future__ import annotations

import io
import math
import tarfile
from typing import BinaryIO, Self

__all__ = ["CheckedTarInfo", "ForwardReader"]

_CHUNK = 1 << 20

_MAX_ID = 2**32 - 2  # (uid_t)-1 tells chown to leave the owner as it is
_MAX_MODE = 2**32 - 1
_MAX_DEVICE_NUMBER = 2**31 - 1  # os.makedev takes C ints
_MAX_SIZE = 2**63 - 1  # what a file offset can hold
_MAX_SECONDS = (2**63 - 1) // 10**9  # mtimes are set in nanoseconds, a signed 64-bit count


class CheckedTarInfo(tarfile.TarInfo):
    """A TarInfo whose header was checked as it was read: tarfile.HeaderError instead of the ValueError tarfile
    raises for a PAX record it cannot parse (a `GNU.sparse.map` that is not numbers), and for a name, link target
    or PAX keyword holding a NUL byte, or an owner, mode, size, device number or mtime that is negative, too large
    or not a number. Pass it to tarfile.open as `tarinfo=`."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        try:
            member = super().fromtarfile(tarfile)
        except ValueError as error:
            raise _header_error(f"a header tarfile cannot read: {error}") from error
        _check(member)
        return member


def _header_error(message: str) -> tarfile.HeaderError:
    return tarfile.HeaderError(message)


def _check(member: tarfile.TarInfo) -> None:
    if "\0" in member.name or "\0" in member.linkname or any("\0" in key for key in member.pax_headers):
        raise _header_error(f"entry {member.name!r} has a NUL byte in its name, link target or PAX records")
    fields = [("uid", member.uid, _MAX_ID), ("gid", member.gid, _MAX_ID), ("mode", member.mode, _MAX_MODE)]
    fields.append(("size", member.size, _MAX_SIZE))
    if member.ischr() or member.isblk() or member.isfifo():
        fields += [("devmajor", member.devmajor, _MAX_DEVICE_NUMBER), ("devminor", member.devminor, _MAX_DEVICE_NUMBER)]
    for field, value, maximum in fields:
        if not 0 <= value <= maximum:
            raise _header_error(f"entry {member.name!r} has an invalid {field} {value}")
    if not (math.isfinite(member.mtime) and -_MAX_SECONDS <= member.mtime <= _MAX_SECONDS):
        raise _header_error(f"entry {member.name!r} has an invalid mtime {member.mtime}")


class ForwardReader:
    """A stream as tarfile's seekable mode ("r:") sees it: seeking is forward only, by reading what is skipped, and
    stops at the end of the stream, where tarfile then reports the truncation. tarfile's stream mode ("r|") skips an
    entry's data block by block without noticing the end: a header claiming 2**60 bytes kept it reading nothing for
    ever. The stream mode also copies its whole buffer on every small read."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            parts = list(iter(lambda: self._read_some(_CHUNK), b""))
            return b"".join(parts)
        data = self._read_some(size)
        if len(data) == size or not data:
            return data
        parts = [data]  # a short read from a pipe or socket is not the end of the stream
        missing = size - len(data)
        while missing and (more := self._read_some(missing)):
            parts.append(more)
            missing -= len(more)
        return b"".join(parts)

    def _read_some(self, size: int) -> bytes:
        data = self._source.read(size)
        self.size += len(data)
        return data

    def tell(self) -> int:
        return self.size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.size + offset if whence == io.SEEK_CUR else -1
        if target < self.size:
            raise io.UnsupportedOperation("a tar stream cannot seek backwards")
        while self.size < target and self._read_some(min(_CHUNK, target - self.size)):
            pass
        return self.size

    def seekable(self) -> bool:
        return True
