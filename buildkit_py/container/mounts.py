"""A container's mounts, made beneath its root through descriptors (as runc does with securejoin and /proc/self/fd).

The container's tree is hostile. Its read-write layer keeps whatever its processes wrote in earlier runs, and a
volume may be shared with another container running right now, which can turn any folder in it into a symlink at
any moment. So a mount target is never handed to mount(2) as a path string. It is resolved as the container would
resolve it (its symlinks followed, inside its root: `/data -> /srv` means the container's /srv), and that path is
then opened from the root's descriptor with `fs.beneath` (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or
the O_NOFOLLOW walk), one folder at a time, making missing folders with mkdirat on the way. A component that is, or
has just become, a symlink fails the start with ELOOP instead of leading out of the root. The mount is made onto
`/proc/self/fd/N`, the inode that was opened. A read-only bind is made read-only on a private staging folder and
then bound in, so there is no moment when it is writable at its target.

Runs in the container's first process, in its own mount namespace (a descriptor opened in another namespace cannot
be a mount target), before pivot_root.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExecError
from ..exec import syscalls as sc
from ..exec.hardening import DEV_TMPFS, harden_kernel_paths, populate_dev
from ..fs.beneath import open_beneath
from .paths import open_in_root
from .spec import BIND, TMPFS

__all__ = ["ContainerMount", "mount_all", "prepare_staging"]

ETC_FILES = ("hosts", "hostname", "resolv.conf")

_DIR = os.O_PATH | os.O_DIRECTORY
_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


@dataclass(frozen=True)
class ContainerMount:
    """A bind of a host path (a volume's data folder too) or a tmpfs, at `target` in the container."""

    kind: str
    target: str
    source: Path | None = None
    readonly: bool = False
    size_bytes: int = 0  # tmpfs
    mode: int = 0o1777  # tmpfs

    @property
    def wants_file(self) -> bool:
        """A bind of anything but a folder needs a file to be mounted on."""
        return self.kind == BIND and self.source is not None and not self.source.is_dir()


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _mount_on(fd: int, source: str | Path | None, fstype: str | None, flags: int, data: str | None, what: str) -> None:
    try:
        sc.mount(source, _fd_path(fd), fstype, flags, data)
    except OSError as error:
        raise ExecError(f"cannot mount {what}: {os.strerror(error.errno or 0).lower()}") from None


def _target(root_fd: int, root: Path, container_path: str, make: str | None) -> int:
    try:
        return open_in_root(root_fd, root, container_path, make)
    except OSError as error:
        reason = (
            "it is a symlink, or one is on the way" if error.errno == errno.ELOOP else os.strerror(error.errno or 0)
        )
        raise ExecError(f"cannot mount on {container_path} in the container: {reason.lower()}") from None


def _mount_kernel_filesystems(root_fd: int, root: Path) -> None:
    """/proc, a minimal /dev and a read-only /sys, with Docker's masked and read-only paths."""
    proc = _target(root_fd, root, "/proc", "dir")
    try:
        _mount_on(proc, "proc", "proc", _NOSUID_NODEV_NOEXEC, None, "proc on /proc")
    finally:
        os.close(proc)
    dev = _target(root_fd, root, "/dev", "dir")
    try:
        source, fstype, flags, options = DEV_TMPFS
        _mount_on(dev, source, fstype, flags, options, "tmpfs on /dev")
    finally:
        os.close(dev)
    mounted_dev = open_beneath(root_fd, "dev", _DIR)  # now the fresh tmpfs, ours alone
    try:
        populate_dev(Path(_fd_path(mounted_dev)))
    finally:
        os.close(mounted_dev)
    sys_fd = _target(root_fd, root, "/sys", "dir")
    try:
        _mount_on(sys_fd, "sysfs", "sysfs", sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC, None, "sysfs on /sys")
    finally:
        os.close(sys_fd)
    # Below proc and sysfs, fresh kernel filesystems nobody in the container has touched yet.
    harden_kernel_paths(Path(_fd_path(root_fd)))


def _bind(root_fd: int, root: Path, mount: ContainerMount, staging: Path) -> None:
    assert mount.source is not None
    target = _target(root_fd, root, mount.target, "file" if mount.wants_file else "dir")
    try:
        what = f"{mount.source} on {mount.target}"
        if not mount.readonly:
            _mount_on(target, mount.source, None, sc.MS_BIND | sc.MS_REC, None, what)
            return
        stage = staging / ("file" if mount.wants_file else "dir")
        _mount_on_path(mount.source, stage, sc.MS_BIND | sc.MS_REC, what)
        try:
            _mount_on_path(None, stage, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY, what)
            _mount_on(target, stage, None, sc.MS_BIND | sc.MS_REC, None, what)
        finally:
            sc.umount2(stage, sc.MNT_DETACH)
    finally:
        os.close(target)


def _mount_on_path(source: Path | None, target: Path, flags: int, what: str) -> None:
    try:
        sc.mount(source, target, None, flags)
    except OSError as error:
        raise ExecError(f"cannot mount {what}: {os.strerror(error.errno or 0).lower()}") from None


def _tmpfs(root_fd: int, root: Path, mount: ContainerMount) -> None:
    target = _target(root_fd, root, mount.target, "dir")
    try:
        options = f"mode={mount.mode:o}" + (f",size={mount.size_bytes}" if mount.size_bytes else "")
        flags = sc.MS_NOSUID | sc.MS_NODEV | (sc.MS_RDONLY if mount.readonly else 0)
        _mount_on(target, "tmpfs", "tmpfs", flags, options, f"tmpfs on {mount.target}")
    finally:
        os.close(target)


def prepare_staging(staging: Path) -> None:
    """The staging folders of read-only binds, in the monitor's private tmpfs."""
    staging.mkdir(mode=0o700)
    (staging / "dir").mkdir(mode=0o700)
    (staging / "file").touch(mode=0o600)


def mount_all(merged: Path, etc_dir: Path, mounts: Sequence[ContainerMount], staging: Path) -> int:
    """Mount everything the container sees beneath `merged`: kernel filesystems, its /etc files, then its volumes,
    binds and tmpfs mounts (parents before what they hold). Returns a descriptor of the root, for pivot_root."""
    root_fd = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    root = Path(_fd_path(root_fd))
    _mount_kernel_filesystems(root_fd, root)
    etc_files = [ContainerMount(BIND, f"/etc/{name}", etc_dir / name) for name in ETC_FILES]
    for mount in etc_files:
        _bind(root_fd, root, mount, staging)
    for mount in sorted(mounts, key=lambda item: len([part for part in item.target.split("/") if part])):
        if mount.kind == TMPFS:
            _tmpfs(root_fd, root, mount)
        else:
            _bind(root_fd, root, mount, staging)
    return root_fd
