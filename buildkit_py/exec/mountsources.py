"""What a step's mounts bind, made ready inside the sandbox before the step's init process starts.

Runs in the sandbox process, in its private mount namespace, with `scratch` its private tmpfs: nothing made here is
visible on the host, and all of it goes when the namespace does.

- An OverlayMount with a `source_path` is mounted whole on the scratch tmpfs, and the path is resolved beneath it
  (symlinks followed, never out of it): that path is what gets bound at the target. Its layers are snapshots no step
  is writing to, so resolving by path is safe.
- A SecretFile is written to the scratch tmpfs, owned and moded as asked, and bound read-only: its bytes never touch
  a disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ExecError
from .executor import AnyMount, OverlayMount, SecretFile
from .rootpath import resolve_in_root

__all__ = ["prepare_sources"]


def prepare_sources(
    scratch: Path, mounts: Sequence[AnyMount], mount_tree: Callable[[OverlayMount, Path], None]
) -> list[Path | None]:
    """For each mount, the path in the sandbox to bind at its target, or None when it is mounted directly.
    `mount_tree(mount, folder)` mounts the whole tree of an OverlayMount on `folder`."""
    prepared: list[Path | None] = []
    for index, mount in enumerate(mounts):
        if isinstance(mount, SecretFile):
            prepared.append(_write_secret(scratch / f"secret-{index}", mount))
        elif isinstance(mount, OverlayMount) and mount.source_path:
            tree = scratch / f"mount-{index}"
            tree.mkdir(mode=0o755)
            mount_tree(mount, tree)
            source = resolve_in_root(tree, mount.source_path)
            if not os.path.lexists(source):
                raise ExecError(f"mount source {mount.source_path} does not exist (for {mount.target})")
            prepared.append(source)
        else:
            prepared.append(None)
    return prepared


def _write_secret(path: Path, secret: SecretFile) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(secret.data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchown(fd, secret.uid, secret.gid)
        os.fchmod(fd, secret.mode)
    finally:
        os.close(fd)
    return path
