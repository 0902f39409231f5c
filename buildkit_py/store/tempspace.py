"""Temp space under `<root>/tmp`, on the same filesystem as blobs and snapshots so that a rename puts things in place.
Names carry their owner process (locking.py), so what a killed process left is swept on the next start."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .locking import owner_tag

__all__ = ["temp_dir", "temp_path"]


@contextmanager
def temp_dir(tmp_root: Path, prefix: str = "") -> Iterator[Path]:
    """A fresh folder under `tmp_root`, removed on exit."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{owner_tag()}", dir=tmp_root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def temp_path(tmp_root: Path, prefix: str = "") -> Iterator[Path]:
    """A path for a temp file under `tmp_root` (created empty); removed on exit if it still exists."""
    fd, name = tempfile.mkstemp(prefix=f"{prefix}{owner_tag()}", dir=tmp_root)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
