"""Is a snapshot still the layer it was unpacked from? Unpack the layer's (verified) tar afresh and compare the trees.

Compared per path: type, permission bits, owner, size, content (sha256), link target, device number, and the overlay
opaque marker. Times are not compared: they are not what a damaged disk or a stray write changes first, and the
snapshot of a built layer keeps nanoseconds its tar rounded away.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .generate import COPY_CHUNK
from .whiteout import OPAQUE_XATTR

__all__ = ["TreeEntry", "compare_trees", "describe_tree"]

_SHOWN = 5


@dataclass(frozen=True)
class TreeEntry:
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    content: str  # sha256 of a regular file, target of a symlink, "major:minor" of a device, "opaque" for a dir


def _file_digest(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        while chunk := stream.read(COPY_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _entry(path: str, info: os.stat_result) -> TreeEntry:
    mode = info.st_mode
    content = ""
    size = 0
    if stat.S_ISREG(mode):
        kind, size, content = "file", info.st_size, _file_digest(path)
    elif stat.S_ISDIR(mode):
        kind = "dir"
        try:
            content = "opaque" if os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y" else ""
        except OSError:
            content = ""
    elif stat.S_ISLNK(mode):
        kind, content = "symlink", os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "char" if stat.S_ISCHR(mode) else "block"
        content = f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    elif stat.S_ISFIFO(mode):
        kind = "fifo"
    else:
        kind = "other"
    return TreeEntry(kind, stat.S_IMODE(mode), info.st_uid, info.st_gid, size, content)


def describe_tree(root: Path) -> Iterator[tuple[str, TreeEntry]]:
    """(path relative to root, entry) for everything under root, never following a symlink."""
    base = os.fspath(root)
    for directory, names, files in os.walk(base, followlinks=False):
        for name in sorted([*names, *files]):
            path = os.path.join(directory, name)
            yield os.path.relpath(path, base), _entry(path, os.lstat(path))


def compare_trees(expected: Path, actual: Path) -> list[str]:
    """What differs between two unpacked trees, as readable lines (at most a few, then a count)."""
    wanted = dict(describe_tree(expected))
    found = dict(describe_tree(actual))
    problems: list[str] = []
    for path in sorted(wanted.keys() | found.keys()):
        want, have = wanted.get(path), found.get(path)
        if want == have:
            continue
        if have is None:
            problems.append(f"/{path} is missing")
        elif want is None:
            problems.append(f"/{path} should not be there")
        else:
            fields = [
                name
                for name in ("kind", "mode", "uid", "gid", "size", "content")
                if getattr(want, name) != getattr(have, name)
            ]
            problems.append(f"/{path} differs ({', '.join(fields)})")
    if len(problems) > _SHOWN:
        problems = [*problems[:_SHOWN], f"and {len(problems) - _SHOWN} more"]
    return problems
