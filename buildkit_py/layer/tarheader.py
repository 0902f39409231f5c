"""Tar headers from hostile streams, checked before anything in them reaches a system call that cannot take it."""

from __future__ import annotations

import math
import tarfile
from typing import Self

__all__ = ["CheckedTarInfo"]

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
