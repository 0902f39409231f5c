"""Mounting an overlayfs stack: the rootfs of a RUN step, of a container, and of `cp`/`export` of a stopped one."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ExecError
from . import syscalls as sc

__all__ = ["mount_overlay"]

_OVERLAY_EXTRA = ",index=off,redirect_dir=off,metacopy=off"


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def mount_overlay(
    lowers: Sequence[Path], target: Path, upper: Path | None = None, work: Path | None = None, flags: int = 0
) -> None:
    """Mount an overlay of `lowers` (topmost first) at `target`; read-only when there is no upper.

    Paths are passed relative to their common parent (we chdir there) so that many layers still fit in the one page
    the kernel accepts for mount options."""
    dirs = [os.fspath(path) for path in lowers]
    if upper is not None and work is not None:
        dirs += [os.fspath(upper), os.fspath(work)]
    base = os.path.commonpath(dirs)
    relative = [_escape(os.path.relpath(path, base)) for path in dirs]
    options = "lowerdir=" + ":".join(relative[: len(lowers)])
    if upper is not None:
        options += f",upperdir={relative[-2]},workdir={relative[-1]}"
    page_size = os.sysconf("SC_PAGE_SIZE")
    if len(os.fsencode(options)) >= page_size:
        raise ExecError(
            f"overlay mount options are {len(os.fsencode(options))} bytes, more than the page size ({page_size}): "
            f"too many layers ({len(lowers)}) under {base}"
        )
    if upper is None:
        flags |= sc.MS_RDONLY
    previous = os.getcwd()
    os.chdir(base)
    try:
        candidates = [options + _OVERLAY_EXTRA, options] if len(options + _OVERLAY_EXTRA) < page_size else [options]
        for index, candidate in enumerate(candidates):
            try:
                sc.mount("overlay", target, "overlay", flags, candidate)
                return
            except OSError as exc:
                if exc.errno == errno.EINVAL and index + 1 < len(candidates):
                    continue  # an older kernel that does not know one of the extra options
                raise ExecError(f"cannot mount overlay on {target}: {exc.strerror} (options {candidate!r})") from exc
    finally:
        os.chdir(previous)
