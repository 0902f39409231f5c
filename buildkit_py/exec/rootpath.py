"""Resolve a path inside a root filesystem the way the kernel would after chroot: symlinks (absolute ones included)
and `..` never lead outside the root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import ExecError

_MAX_SYMLINKS = 255


def resolve_in_root(root: Path, path: str, follow_final: bool = True) -> Path:
    """Host path for container path `path` under `root`. Components that do not exist are kept as they are."""
    pending = [part for part in path.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    links_followed = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        is_last = not pending
        try:
            mode = os.lstat(candidate).st_mode
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(mode) and (follow_final or not is_last):
            links_followed += 1
            if links_followed > _MAX_SYMLINKS:
                raise ExecError(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return Path(root, *resolved)


def container_path(root: Path, host_path: Path) -> str:
    """The container path of `host_path`, which must lie under `root`."""
    relative = host_path.relative_to(root)
    return "/" + relative.as_posix() if relative.parts else "/"
