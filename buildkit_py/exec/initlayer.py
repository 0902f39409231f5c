"""The init layer: the mountpoints a RUN step needs, in a read-only layer on top of the image's.

Like Docker's (moby `daemon/initlayer/setup_unix.go`): because /proc, /dev, /etc/hosts, ... already exist in a lower
layer, mounting over them creates nothing in the upper dir, so none of them leak into the step's layer. Docker creates
the files with mode 0755 (its `.dockerenv` shows it) and the directories with 0755.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["INIT_DIRS", "INIT_FILES", "INIT_SYMLINKS", "ensure_init_layer"]

INIT_DIRS = ("dev", "dev/pts", "dev/shm", "proc", "sys", "etc")
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv", "dev/console")
INIT_SYMLINKS = (("etc/mtab", "/proc/mounts"),)
_VERSION = "v1"


def ensure_init_layer(state_dir: Path) -> Path:
    """The init layer folder under `state_dir`, created once (atomically, so concurrent callers agree)."""
    layer = state_dir / f"initlayer-{_VERSION}"
    if layer.is_dir():
        return layer
    state_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".initlayer-", dir=state_dir))
    try:
        staging.chmod(0o755)
        for name in INIT_DIRS:
            (staging / name).mkdir(mode=0o755)
            (staging / name).chmod(0o755)
        for name in INIT_FILES:
            fd = os.open(staging / name, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o755)
            os.close(fd)
            os.chmod(staging / name, 0o755)
        for name, target in INIT_SYMLINKS:
            os.symlink(target, staging / name)
        try:
            staging.rename(layer)
        except OSError:
            if not layer.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return layer
