"""Unpacked layers, one folder per diff_id: `<root>/snapshots/<first 16 hex of the diff_id>`.

A snapshot holds a layer in overlayfs form (whiteouts as 0:0 character devices) and is used directly as an overlay
lowerdir. The names are short on purpose: an overlay mount passes every lowerdir in one option string, and the kernel
limits that string to a page. A folder appears by one atomic rename from `<root>/tmp` and disappears the same way, so
a snapshot path never shows a half-unpacked or half-deleted layer.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from ..digest import Digest
from .content import checked_digest
from .locking import owner_tag

__all__ = ["SNAPSHOT_NAME_LENGTH", "SnapshotStore"]

SNAPSHOT_NAME_LENGTH = 16


class SnapshotStore:
    """Snapshots under `<root>/snapshots`; staging and trash under `<root>/tmp`. `root` is the store's root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.snapshots_dir = self.root / "snapshots"
        self.tmp_dir = self.root / "tmp"
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, diff_id: Digest | str) -> Path:
        checked = checked_digest(diff_id)
        return self.snapshots_dir / checked.hex[:SNAPSHOT_NAME_LENGTH]

    def has(self, diff_id: Digest | str) -> bool:
        return self.path(diff_id).is_dir()

    def commit(self, folder: Path, diff_id: Digest | str) -> Path:
        """Move `folder` (on this filesystem, normally under `<root>/tmp`) into place as the snapshot of `diff_id`.
        When the snapshot exists already, that one is kept and `folder` is deleted."""
        if not self.try_commit(folder, diff_id):
            shutil.rmtree(folder, ignore_errors=True)
        return self.path(diff_id)

    def try_commit(self, folder: Path, diff_id: Digest | str) -> bool:
        """Rename `folder` into place; False (leaving `folder` alone) when the snapshot exists already."""
        try:
            os.rename(folder, self.path(diff_id))
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            return False
        return True

    def detach(self, diff_id: Digest | str) -> Path | None:
        """Rename a snapshot out of `snapshots/` into the temp folder (atomic); returns where it went, for deletion."""
        source = self.path(diff_id)
        trash = Path(tempfile.mkdtemp(prefix=f"trash{owner_tag()}", dir=self.tmp_dir))
        try:
            os.rename(source, trash / "snapshot")
        except FileNotFoundError:
            os.rmdir(trash)
            return None
        return trash

    def remove(self, diff_id: Digest | str) -> None:
        trash = self.detach(diff_id)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
