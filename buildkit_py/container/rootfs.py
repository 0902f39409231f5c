"""A container's root filesystem for commands that read or write it from outside: cp, export.

A running container's root is `/proc/<its PID 1>/root` (its mounts included); a stopped one's is mounted here, in a
mount namespace of this process's own (so it goes when the process ends and never shows on the host): the
read-write layer on top of the init layer and the image's layers, writable for `cp` into it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ContainerError
from ..exec import syscalls as sc
from ..exec.mountns import private_mount_namespace, release_foreign_overlays
from ..exec.overlay import mount_overlay
from ..store import Store
from ..store.containers import ContainerRow
from .layout import ContainerLayout
from .plan import image_lowers

__all__ = ["container_root", "kernel_mounts"]

_private = False


@contextmanager
def container_root(store: Store, row: ContainerRow, writable: bool = False, live: bool = True) -> Iterator[Path]:
    """The container's root, as a path valid while the context lasts. `live=False` mounts it even while it runs
    (without its volumes and /proc, as `export` wants it)."""
    global _private
    if live and row.state in ("running", "paused") and row.pid > 0:
        yield Path(f"/proc/{row.pid}/root")
        return
    if os.geteuid() != 0:
        raise ContainerError("reading a container's files needs root (overlay mounts)")
    layout = ContainerLayout(store.root, row.container_id)
    lowers = image_lowers(store, row)
    if not _private:
        private_mount_namespace()  # this process's own mounts from here on; the host never sees them
        release_foreign_overlays(store.root)
        _private = True
    with store.temp_dir("rootfs-") as scratch:
        target = scratch / "root"
        target.mkdir()
        work = scratch / "work"
        work.mkdir()
        if writable:
            mount_overlay(lowers, target, layout.upper, layout.work)
        else:
            mount_overlay((layout.upper, *lowers), target)
        try:
            yield target
        finally:
            sc.umount2(target, sc.MNT_DETACH)


# What `cp` out of a running container shows of these is their mountpoint, as Docker's copy of the container's root
# filesystem (which never has them mounted) does.
_KERNEL_FILESYSTEMS = frozenset({"proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "securityfs", "debugfs"})


def kernel_mounts(row: ContainerRow) -> frozenset[str]:
    """The running container's mountpoints (relative to its root) of /proc, /sys, its /dev and their like."""
    if row.state not in ("running", "paused") or row.pid <= 0:
        return frozenset()
    try:
        lines = Path(f"/proc/{row.pid}/mountinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    found = {"dev"}  # a tmpfs of device nodes made at start, not the root's /dev
    for line in lines:
        fields, _, after = line.partition(" - ")
        parts = fields.split()
        if len(parts) > 4 and after.split()[:1] and after.split()[0] in _KERNEL_FILESYSTEMS:
            found.add(parts[4].encode().decode("unicode_escape").strip("/"))
    return frozenset(found)
