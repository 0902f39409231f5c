"""VOLUME over a file: Docker's classic builder mounts a volume at each VOLUME path when it makes a step's container,
and refuses ("cannot mount volume over existing file") when the path is a file. pybuild makes no container for
VOLUME, so the finished image is checked instead: a volume path that is a file (or anything but a directory or a
symlink) in the topmost layer that has it fails the build."""

from __future__ import annotations

import errno
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..digest import Digest
from ..fs.beneath import RootDir
from ..gostring import go_clean
from ..layer.snapshots import snapshot_path
from ..layer.whiteout import is_whiteout

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["volume_over_file"]


def volume_over_file(store: Store, diff_ids: Sequence[Digest], volumes: Sequence[str]) -> str | None:
    """The first of `volumes` that the layers (base first) leave as a file, or None."""
    for volume in volumes:
        relpath = go_clean("/" + volume).lstrip("/")
        if relpath and _is_file(store, diff_ids, relpath):
            return volume
    return None


def _is_file(store: Store, diff_ids: Sequence[Digest], relpath: str) -> bool:
    for diff_id in reversed(diff_ids):
        with RootDir(snapshot_path(store, diff_id)) as root:
            try:
                found = root.lstat(relpath)
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # not in this layer (or behind a symlink this check does not follow)
                raise
        if is_whiteout(found):
            return False
        return not (stat.S_ISDIR(found.st_mode) or stat.S_ISLNK(found.st_mode))
    return False
