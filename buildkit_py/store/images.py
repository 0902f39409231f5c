"""Image records: a config blob (its sha256 is the image id), and the layer chain it names, in `images` and
`image_layers`. The store does not read configs: whoever stores one says which layers it names and when it was made.
An image only ever names layers that are recorded, and whose blob exists (checked in the storing transaction)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..digest import Digest
from ..errors import ImageNotFound, StoreError
from .content import ContentStore
from .database import Database
from .layers import LayerStore, remove_trash

__all__ = ["ImageStore", "ImageSummary"]


@dataclass(frozen=True)
class ImageSummary:
    image_id: Digest
    tags: tuple[str, ...]
    created: str
    size: int


class ImageStore:
    def __init__(self, db: Database, blobs: ContentStore, layers: LayerStore) -> None:
        self._db = db
        self._blobs = blobs
        self._layers = layers

    def put(self, config: bytes, diff_ids: Sequence[Digest], created: str) -> Digest:
        """Store an image config byte for byte; every layer it names must be committed first."""
        with self._db.write() as db:
            missing = self._layers.missing(db, diff_ids)
            if missing:
                raise StoreError(f"image names layers that are not in the store: {', '.join(map(str, missing))}")
            image_id = self._blobs.put_bytes(config)
            exists = db.execute("SELECT 1 FROM images WHERE image_id = ?", (str(image_id),)).fetchone()
            if exists is None:
                db.execute(
                    "INSERT INTO images (image_id, created, added) VALUES (?, ?, ?)",
                    (str(image_id), created, time.time()),
                )
                db.executemany(
                    "INSERT INTO image_layers (image_id, position, diff_id) VALUES (?, ?, ?)",
                    [(str(image_id), position, str(d)) for position, d in enumerate(diff_ids)],
                )
        return image_id

    def has(self, image_id: Digest) -> bool:
        with self._db.read() as db:
            return db.execute("SELECT 1 FROM images WHERE image_id = ?", (str(image_id),)).fetchone() is not None

    def config_bytes(self, image_id: Digest) -> bytes:
        if not self.has(image_id):
            raise ImageNotFound(f"No such image: {image_id}")
        return self._blobs.read_bytes(image_id)

    def chain(self, image_id: Digest) -> tuple[Digest, ...]:
        with self._db.read() as db:
            rows = db.execute(
                "SELECT diff_id FROM image_layers WHERE image_id = ? ORDER BY position", (str(image_id),)
            ).fetchall()
        return tuple(Digest.parse(row[0]) for row in rows)

    def chains(self) -> dict[Digest, tuple[Digest, ...]]:
        """Every image's layer chain, by image id, read from meta.db (no config blob is opened)."""
        chains: dict[Digest, list[Digest]] = {}
        with self._db.read() as db:
            for image_id in db.execute("SELECT image_id FROM images"):
                chains[Digest.parse(image_id[0])] = []
            rows = db.execute("SELECT image_id, diff_id FROM image_layers ORDER BY image_id, position").fetchall()
            for image_id, diff_id in rows:
                chains.setdefault(Digest.parse(image_id), []).append(Digest.parse(diff_id))
        return {image_id: tuple(chain) for image_id, chain in chains.items()}

    def summaries(self) -> list[ImageSummary]:
        """Every image, newest first (by created time, then by when it was stored), with its tags and layer size."""
        with self._db.read() as db:
            images = db.execute(
                "SELECT i.image_id, i.created, COALESCE(SUM(l.size), 0) FROM images i "
                "LEFT JOIN image_layers il ON il.image_id = i.image_id LEFT JOIN layers l ON l.diff_id = il.diff_id "
                "GROUP BY i.image_id ORDER BY i.created DESC, i.added DESC"
            ).fetchall()
            tags: dict[str, list[str]] = {}
            for name, image_id in db.execute("SELECT name, image_id FROM tags ORDER BY name"):
                tags.setdefault(image_id, []).append(name)
        return [
            ImageSummary(Digest.parse(image_id), tuple(tags.get(image_id, ())), created, int(size))
            for image_id, created, size in images
        ]

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[Digest]:
        """Image ids whose hex starts with `prefix` (lower-case hex), at most `limit`."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT image_id FROM images WHERE image_id >= ? AND image_id < ? LIMIT ?",
                (f"sha256:{prefix}", f"sha256:{prefix}g", limit),
            ).fetchall()
        return [Digest.parse(row[0]) for row in rows]

    def delete_in(self, db: sqlite3.Connection, image_id: Digest) -> list[Digest]:
        """Inside a write transaction: delete the image record and its config; returns its layer chain."""
        chain = [
            Digest.parse(row[0])
            for row in db.execute(
                "SELECT diff_id FROM image_layers WHERE image_id = ? ORDER BY position", (str(image_id),)
            )
        ]
        db.execute("DELETE FROM image_layers WHERE image_id = ?", (str(image_id),))
        db.execute("DELETE FROM images WHERE image_id = ?", (str(image_id),))
        self._blobs.delete(image_id)
        return chain

    def delete(self, image_id: Digest) -> list[Digest]:
        """Delete an image no tag names, and its layers that nothing else names; returns the deleted layers."""
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM tags WHERE image_id = ? LIMIT 1", (str(image_id),)).fetchone():
                raise StoreError(f"image {image_id} is still tagged")
            chain = self.delete_in(db, image_id)
            deleted, trash = self._layers.collect(db, chain)
        remove_trash(trash)
        return deleted
