"""File actions (COPY, ADD from local sources, WORKDIR's mkdir) applied to a directory tree.

The sandbox calls `apply_actions` in a private mount namespace, with `dest_root` the overlay view of the image being
built and `sources` the trees CopyActions read (the build context folder, or another stage's read-only rootfs).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import StepError
from ..solver.ops import CopyAction, FileAction, MkdirAction
from .copy import copy_action, mkdir_all, resolve_owner
from .copycount import CopyCounter
from .rootpath import resolve_in_root

__all__ = ["apply_actions", "make_directory"]


def make_directory(dest_root: Path, action: MkdirAction) -> None:
    """WORKDIR: create the directory (and its parents) with `mode`; an existing directory is left as it is.

    Docker 20.10's classic builder creates WORKDIR 0755 and root-owned whatever USER says (the frontend passes no
    chown); a chown, when given, goes to every directory created."""
    try:
        target = os.fspath(resolve_in_root(dest_root, action.path))
    except NotADirectoryError:
        raise StepError(f"mkdir {action.path}: not a directory") from None
    if os.path.isdir(target):
        return
    if os.path.lexists(target):
        raise StepError(f"mkdir {action.path}: not a directory")
    if not action.make_parents and not os.path.isdir(os.path.dirname(target)):
        raise StepError(f"mkdir {action.path}: no such file or directory")
    owner = resolve_owner(dest_root, action.chown) or (0, 0)
    try:
        mkdir_all(target, action.mode, owner)
    except OSError as error:
        reason = "not a directory" if error.errno == errno.ENOTDIR else (error.strerror or str(error)).lower()
        raise StepError(f"mkdir {action.path}: {reason}") from error


def apply_actions(
    dest_root: Path, sources: Mapping[str, Path], actions: Sequence[FileAction], counter: CopyCounter | None = None
) -> None:
    """Apply `actions` in order to the tree at `dest_root`; a CopyAction reads `sources[str(action.source)]`.
    `counter` counts the files and bytes copied."""
    for action in actions:
        if isinstance(action, MkdirAction):
            make_directory(dest_root, action)
        elif isinstance(action, CopyAction):
            copy_action(dest_root, sources[str(action.source)], action, counter)
        else:  # pragma: no cover - FileAction is a closed union
            raise TypeError(f"unknown file action {action!r}")
