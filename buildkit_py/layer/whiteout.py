"""How overlayfs marks deletions on disk, and how OCI layer tars mark them.

On disk (a snapshot, i.e. an overlay upper dir or an unpacked layer):
    deleted path      a character device 0:0 at that path
    opaque directory  the xattr trusted.overlay.opaque = "y" (user.overlay.opaque under userxattr mounts)
In a tar (OCI image spec, "whiteouts"):
    deleted path      an empty regular file `.wh.<name>` next to where <name> was
    opaque directory  an empty regular file `<dir>/.wh..wh..opq`
"""

from __future__ import annotations

import os
import stat

__all__ = [
    "OPAQUE_MARKER",
    "OPAQUE_XATTR",
    "WHITEOUT_PREFIX",
    "is_opaque",
    "is_overlay_xattr",
    "is_whiteout",
    "make_whiteout",
    "unsupported_overlay_xattr",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_OPAQUE_XATTRS = (OPAQUE_XATTR, "user.overlay.opaque")
# These make an upper dir depend on its lower dirs (a renamed dir that still reads from below, a file whose data
# stays below), so the upper dir alone is not the layer: the executor must mount with redirect_dir=off, metacopy=off.
_DEPENDENT_XATTRS = ("redirect", "metacopy")


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_overlay_xattr(name: str) -> bool:
    """overlayfs bookkeeping (opaque, origin, impure, nlink, ...): never copied into a tar or out of one."""
    return name.startswith(_OVERLAY_XATTR_PREFIXES)


def unsupported_overlay_xattr(names: list[str]) -> str | None:
    """The first xattr that makes an upper dir incomplete without its lower dirs, if any."""
    for name in names:
        for prefix in _OVERLAY_XATTR_PREFIXES:
            if name.startswith(prefix) and name[len(prefix) :] in _DEPENDENT_XATTRS:
                return name
    return None


def is_opaque(path: bytes | str, names: list[str]) -> bool:
    """Whether the directory at path, whose xattr names are given, is opaque."""
    for name in _OPAQUE_XATTRS:
        if name in names:
            try:
                if os.getxattr(path, name, follow_symlinks=False) == b"y":
                    return True
            except OSError:
                continue
    return False


def make_whiteout(name: str, dir_fd: int) -> None:
    """Create the on-disk whiteout for name inside dir_fd. Allowed without CAP_MKNOD since Linux 5.8."""
    os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dir_fd)
