"""Layers: each a row in `layers`, an unpacked snapshot, and its uncompressed tar, kept one of two ways:
- as a blob named by its diff_id (a layer pulled or loaded whose tar cannot be rebuilt from its snapshot), or
- as a recipe (recipes.py) that rebuilds the tar byte for byte from the snapshot, so the bytes are on disk once.
`open` gives the tar either way, verified against the diff_id as it is read.

A layer is deleted (row, blob or recipe, snapshot) only when no image and no cache record names it any more;
`collect` is the one place that decides it, inside the caller's write transaction.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ..digest import Digest
from ..errors import DigestMismatch, StoreError
from .content import ContentStore, checked_digest
from .damage import DamageRecords
from .database import Database
from .snapshots import SnapshotStore

__all__ = ["LayerStore", "remove_trash"]


class LayerStore:
    def __init__(self, db: Database, blobs: ContentStore, snapshots: SnapshotStore, damage: DamageRecords) -> None:
        self._db = db
        self._blobs = blobs
        self._snapshots = snapshots
        self._damage = damage

    def commit(self, tar_path: Path, diff_id: Digest, size: int, snapshot: Path | None = None) -> None:
        """Move an uncompressed layer tar (a temp file under the store's root) into the blobs as `diff_id`, record
        the layer, and, when given, commit `snapshot` as its unpacked form. The tar is hashed first: DigestMismatch
        if it is not `diff_id`, StoreError if it is not `size` bytes."""
        diff_id = checked_digest(diff_id)
        actual, actual_size = self._blobs.hash_file(tar_path, diff_id.algorithm)
        if actual != diff_id:
            raise DigestMismatch(f"layer tar {tar_path} hashes to {actual}, not {diff_id}")
        if actual_size != size:
            raise StoreError(f"layer {diff_id} is {actual_size} bytes, not {size}")
        with open(tar_path, "rb") as file:
            os.fsync(file.fileno())
        if snapshot is not None:
            _on_disk(snapshot)
        with self._db.write() as db:
            self._blobs.place(tar_path, diff_id)
            now = time.time()
            db.execute(
                "INSERT INTO layers (diff_id, size, added) VALUES (?, ?, ?) ON CONFLICT(diff_id) DO UPDATE SET added = ?",
                (str(diff_id), size, now, now),
            )
            self._damage.clear_in(db, diff_id)
            kept = snapshot is not None and self._snapshots.try_commit(snapshot, diff_id)
        if snapshot is not None and not kept:
            shutil.rmtree(snapshot, ignore_errors=True)

    def commit_recipe(self, diff_id: Digest, size: int, recipe: bytes, snapshot: Path) -> None:
        """Record a layer kept as `snapshot` (a folder under the store's root, moved into place) plus `recipe`, which
        the caller checked rebuilds the layer's tar exactly. If the layer is in the store already, that copy stays.
        The snapshot's files are on disk (one syncfs, syncfs.py) before the row that names them is written."""
        diff_id = checked_digest(diff_id)
        recipe_digest = self._blobs.put_bytes(recipe)
        synced = False
        if not self.has(diff_id):  # the usual case; a copy already here makes this one's files unneeded
            _on_disk(snapshot)
            synced = True
        with self._db.write() as db:
            row = db.execute("SELECT recipe FROM layers WHERE diff_id = ?", (str(diff_id),)).fetchone()
            kept = False
            if row is None or not self._present(row[0], diff_id):
                if not synced:  # the copy that was here has just been deleted
                    _on_disk(snapshot)
                kept = self._snapshots.try_commit(snapshot, diff_id) or self._snapshots.has(diff_id)
                if kept:
                    now = time.time()
                    db.execute(
                        "INSERT INTO layers (diff_id, size, added, recipe) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(diff_id) DO UPDATE SET added = ?, recipe = excluded.recipe",
                        (str(diff_id), size, now, str(recipe_digest), now),
                    )
                    self._damage.clear_in(db, diff_id)
        if not kept or snapshot.exists():
            shutil.rmtree(snapshot, ignore_errors=True)
        if row is not None and not kept:
            self._unused_recipe(recipe_digest)

    def _unused_recipe(self, recipe_digest: Digest) -> None:
        with self._db.read() as db:
            used = db.execute("SELECT 1 FROM layers WHERE recipe = ? LIMIT 1", (str(recipe_digest),)).fetchone()
        if used is None:
            self._blobs.delete(recipe_digest)

    def _present(self, recipe: str | None, diff_id: Digest) -> bool:
        """The layer's bytes are here: its blob, or its recipe and its snapshot."""
        if recipe is None:
            return self._blobs.has(diff_id)
        return self._blobs.has(recipe) and self._snapshots.has(diff_id)

    def has(self, diff_id: Digest) -> bool:
        with self._db.read() as db:
            row = db.execute("SELECT recipe FROM layers WHERE diff_id = ?", (str(checked_digest(diff_id)),)).fetchone()
        return row is not None and self._present(row[0], diff_id)

    def kept_as_recipe(self, diff_id: Digest) -> bool:
        with self._db.read() as db:
            row = db.execute("SELECT recipe FROM layers WHERE diff_id = ?", (str(checked_digest(diff_id)),)).fetchone()
        return row is not None and row[0] is not None

    def size(self, diff_id: Digest) -> int:
        with self._db.read() as db:
            row = db.execute("SELECT size FROM layers WHERE diff_id = ?", (str(checked_digest(diff_id)),)).fetchone()
        if row is None:
            raise StoreError(f"layer not in the store: {diff_id}")
        return int(row[0])

    def sizes(self) -> dict[Digest, int]:
        """Every recorded layer's size in bytes (its uncompressed tar), by diff_id."""
        with self._db.read() as db:
            rows = db.execute("SELECT diff_id, size FROM layers").fetchall()
        return {Digest.parse(diff_id): int(size) for diff_id, size in rows}

    def content_sizes(self) -> dict[Digest, int | None]:
        """Every recorded layer's content size (what its files and symlinks hold, Docker's measure), by diff_id;
        None where it has not been measured yet (`set_content_size`)."""
        with self._db.read() as db:
            rows = db.execute("SELECT diff_id, content_size FROM layers").fetchall()
        return {Digest.parse(diff_id): None if size is None else int(size) for diff_id, size in rows}

    def set_content_size(self, diff_id: Digest, size: int) -> None:
        with self._db.write() as db:
            db.execute("UPDATE layers SET content_size = ? WHERE diff_id = ?", (size, str(checked_digest(diff_id))))

    def open(self, diff_id: Digest, *, even_if_damaged: bool = False) -> BinaryIO:
        """The layer's uncompressed tar; reading it to the end verifies it. A layer `system check` found damaged is
        refused (DamagedContent), except to the check itself."""
        diff_id = checked_digest(diff_id)
        with self._db.read() as db:
            row = db.execute("SELECT recipe, size FROM layers WHERE diff_id = ?", (str(diff_id),)).fetchone()
        if row is None or not self._present(row[0], diff_id):
            raise StoreError(f"layer not in the store: {diff_id}")
        if not even_if_damaged:
            self._damage.refuse(diff_id)
        if row[0] is None:
            return self._blobs.open(diff_id)
        from .recipes import RecipeReader  # zstandard: not imported by commands that never read a layer's tar

        recipe = self._blobs.read_bytes(row[0])
        return RecipeReader(recipe, self._snapshots.path(diff_id), diff_id, int(row[1]))  # type: ignore[return-value]

    def snapshot(self, diff_id: Digest) -> Path | None:
        """The layer's unpacked form (an overlay lowerdir), or None when it has none yet: `buildkit_py.layer`'s
        `snapshot_path` unpacks it then."""
        diff_id = checked_digest(diff_id)
        self._damage.refuse(diff_id)
        path = self._snapshots.path(diff_id)
        return path if path.is_dir() else None

    def add_snapshot(self, diff_id: Digest, folder: Path) -> Path:
        """Move `folder` (unpacked from the layer's blob, under the store's tmp) into place as its snapshot."""
        diff_id = checked_digest(diff_id)
        _on_disk(folder)
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM layers WHERE diff_id = ?", (str(diff_id),)).fetchone() is None:
                raise StoreError(f"layer was removed while it was unpacked: {diff_id}")
            self._snapshots.try_commit(folder, diff_id)
        return self._snapshots.path(diff_id)

    def all_present(self, chain: Sequence[Digest]) -> bool:
        """Whether every layer of `chain` is recorded and its blob or snapshot is there."""
        with self._db.read() as db:
            return not self.missing(db, chain)

    def missing(self, db: sqlite3.Connection, chain: Sequence[Digest]) -> list[Digest]:
        """Inside a transaction: the layers of `chain` that are not recorded or whose blob is gone."""
        missing = []
        for diff_id in chain:
            row = db.execute("SELECT recipe FROM layers WHERE diff_id = ?", (str(diff_id),)).fetchone()
            if row is None or not self._present(row[0], diff_id):
                missing.append(diff_id)
        return missing

    def collect(self, db: sqlite3.Connection, candidates: Sequence[Digest]) -> tuple[list[Digest], list[Path]]:
        """Inside a write transaction: delete the candidates no image or cache record names. Snapshots are renamed
        into tmp (returned, for deletion once the transaction is over) so the lock is not held during a long rmtree."""
        deleted: list[Digest] = []
        trash: list[Path] = []
        for diff_id in dict.fromkeys(candidates):
            text = str(diff_id)
            if db.execute("SELECT 1 FROM image_layers WHERE diff_id = ? LIMIT 1", (text,)).fetchone():
                continue
            if db.execute("SELECT 1 FROM cache_layers WHERE diff_id = ? LIMIT 1", (text,)).fetchone():
                continue
            row = db.execute("SELECT recipe FROM layers WHERE diff_id = ?", (text,)).fetchone()
            if row is None:
                continue
            db.execute("DELETE FROM layers WHERE diff_id = ?", (text,))
            self._blobs.delete(diff_id)
            if row[0] is not None:
                self._blobs.delete(row[0])
            self._damage.clear_in(db, diff_id)
            folder = self._snapshots.detach(diff_id)
            if folder is not None:
                trash.append(folder)
            deleted.append(diff_id)
        return deleted, trash

    def delete_unreferenced(self, added_before: float) -> list[Digest]:
        """Delete the layers no image and no cache record names that were stored before `added_before` (a layer
        a running build has just committed is not named by anything yet: the grace period keeps it)."""
        with self._db.write() as db:
            rows = db.execute(
                "SELECT diff_id FROM layers l WHERE added < ? "
                "AND NOT EXISTS (SELECT 1 FROM image_layers il WHERE il.diff_id = l.diff_id) "
                "AND NOT EXISTS (SELECT 1 FROM cache_layers cl WHERE cl.diff_id = l.diff_id)",
                (added_before,),
            ).fetchall()
            deleted, trash = self.collect(db, [Digest.parse(row[0]) for row in rows])
        remove_trash(trash)
        return deleted


def _on_disk(folder: Path) -> None:
    """A snapshot's files on disk before a row names them: one syncfs of the store's filesystem."""
    from .syncfs import sync_filesystem  # lazy: ctypes, only for commands that commit layers

    sync_filesystem(folder)


def remove_trash(trash: Sequence[Path]) -> None:
    for folder in trash:
        shutil.rmtree(folder, ignore_errors=True)
