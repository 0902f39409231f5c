"""Docker's default hardening of a container's filesystem view: masked and read-only kernel paths, default devices.

Applied in the container's own mount namespace before pivot_root (moby `oci/defaults.go`, runc `rootfs_linux.go`):
- masked: a file gets /dev/null bound over it, a directory an empty read-only tmpfs, so reading shows nothing;
- read-only: bound onto itself and remounted read-only (`/proc/sys` holds host-wide settings such as core_pattern);
- devices: /dev is a fresh `nodev` tmpfs holding bind mounts of the host's null, zero, full, random, urandom and tty
  nodes, plus a private devpts. The rootfs overlay is mounted `nodev` as well, so a node made with `mknod` inside a
  step cannot be opened (EACCES, where Docker's device cgroup answers EPERM).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import syscalls as sc

__all__ = ["DEFAULT_DEVICES", "MASKED_PATHS", "READONLY_PATHS", "harden_kernel_paths", "mount_dev", "populate_dev"]

MASKED_PATHS = (
    "proc/asound",
    "proc/acpi",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
)
READONLY_PATHS = ("proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger")
DEFAULT_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_SYMLINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)
_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


DEV_TMPFS = ("tmpfs", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_STRICTATIME, "mode=755,size=65536k")


def mount_dev(dev: Path) -> None:
    """A minimal /dev at `dev`: Docker's default device nodes, a private devpts, shm and mqueue."""
    source, fstype, flags, options = DEV_TMPFS
    sc.mount(source, dev, fstype, flags, options)
    populate_dev(dev)


def populate_dev(dev: Path) -> None:
    """Fill the fresh tmpfs at `dev` (mounted with DEV_TMPFS) as `mount_dev` does."""
    for name in DEFAULT_DEVICES:
        (dev / name).touch(mode=0o666)
        sc.mount(f"/dev/{name}", dev / name, None, sc.MS_BIND)
    (dev / "pts").mkdir(mode=0o755)
    sc.mount("devpts", dev / "pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    (dev / "shm").mkdir(mode=0o1777)
    sc.mount("shm", dev / "shm", "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k")
    (dev / "mqueue").mkdir(mode=0o1777)
    sc.mount("mqueue", dev / "mqueue", "mqueue", _NOSUID_NODEV_NOEXEC)
    for name, link in _DEV_SYMLINKS:
        os.symlink(link, dev / name)


def _mask(path: Path) -> None:
    if path.is_dir():
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC, "size=0")
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND)


def _read_only(path: Path) -> None:
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC)


def harden_kernel_paths(rootfs: Path) -> None:
    """Mask and write-protect /proc and /sys paths under `rootfs`, where proc and sysfs are already mounted."""
    for relative in READONLY_PATHS:
        path = rootfs / relative
        if os.path.lexists(path):
            _read_only(path)
    for relative in MASKED_PATHS:
        path = rootfs / relative
        if os.path.lexists(path):
            _mask(path)
