"""`pybuild diff CONTAINER`: what the container changed, from its read-write layer, in Docker's A/C/D form.

The upper dir is in overlay's format: a whiteout (character device 0:0) is a deletion, anything else is an
addition, or a change when the image has that path. The image's snapshots are hostile trees: every lookup in them
goes through fs/beneath, never through a symlink.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..fs.beneath import RootDir
from ..layer.whiteout import is_opaque

__all__ = ["Change", "container_changes"]


@dataclass(frozen=True)
class Change:
    kind: str  # "A", "C" or "D"
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def _in_image(lowers: list[RootDir], relpath: str) -> bool:
    for lower in lowers:
        try:
            lower.lstat(relpath)
            return True
        except OSError:
            continue
    return False


def container_changes(upper: Path, lowers: tuple[Path, ...]) -> list[Change]:
    """Docker's `docker diff` list for an upper dir over `lowers`, sorted by path."""
    roots = [RootDir(lower) for lower in lowers]
    changes: list[Change] = []
    try:

        def walk(directory: Path, relative: str, hidden: bool) -> None:
            with os.scandir(directory) as entries:
                names = sorted(entry.name for entry in entries)
            for name in names:
                path = directory / name
                child = f"{relative}/{name}" if relative else name
                info = os.lstat(path)
                if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                    changes.append(Change("D", "/" + child))
                    continue
                existed = not hidden and _in_image(roots, child)
                changes.append(Change("C" if existed else "A", "/" + child))
                if stat.S_ISDIR(info.st_mode):
                    opaque = is_opaque(os.fsencode(path), os.listxattr(path, follow_symlinks=False))
                    walk(path, child, hidden or opaque)

        walk(upper, "", False)
    finally:
        for root in roots:
            root.close()
    return sorted(changes, key=lambda change: change.path)
