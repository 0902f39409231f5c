"""Tags: a name (`busybox:latest`, `localhost:5000/a/b:1`) pointing at an image id, like git's refs.

Names are filed in Docker's familiar form. Updates can be compare-and-swap: the tag moves only if it still points
where the caller last saw it, checked and written in one transaction."""

from __future__ import annotations

import time
from enum import Enum

from ..digest import Digest
from ..errors import ConflictError, ImageNotFound
from ..reference import InvalidReference, parse_reference
from .database import Database

__all__ = ["ABSENT", "Absent", "TagStore", "normalize_tag"]


class Absent(Enum):
    """`set(..., expected_previous=ABSENT)`: the tag must not exist yet."""

    ABSENT = "absent"


ABSENT = Absent.ABSENT


def normalize_tag(name: str) -> str:
    """The key a tag is filed under: the familiar `name:tag` (`busybox:latest`, `localhost:5000/x:1`)."""
    reference = parse_reference(name)
    if reference.digest is not None:
        raise InvalidReference(f"a tag cannot contain a digest: {name}")
    return reference.familiar


class TagStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, name: str, image_id: Digest, expected_previous: Digest | Absent | None = None) -> str:
        """Point tag `name` at an image; returns the key it is filed under. With `expected_previous`, only if the tag
        still points at that image (or, with ABSENT, does not exist): ConflictError otherwise."""
        key = normalize_tag(name)
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM images WHERE image_id = ?", (str(image_id),)).fetchone() is None:
                raise ImageNotFound(f"No such image: {image_id}")
            row = db.execute("SELECT image_id FROM tags WHERE name = ?", (key,)).fetchone()
            current = row[0] if row is not None else None
            if expected_previous is ABSENT and current is not None:
                raise ConflictError(f"tag {key} exists already (it points at {current})")
            if isinstance(expected_previous, Digest) and current != str(expected_previous):
                raise ConflictError(f"tag {key} points at {current or 'nothing'}, not {expected_previous}")
            db.execute(
                "INSERT INTO tags (name, image_id, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, updated = excluded.updated",
                (key, str(image_id), time.time()),
            )
        return key

    def get(self, name: str) -> Digest | None:
        """The image a tag points at, or None; `name` in any form Docker accepts."""
        with self._db.read() as db:
            row = db.execute("SELECT image_id FROM tags WHERE name = ?", (normalize_tag(name),)).fetchone()
        return None if row is None else Digest.parse(row[0])

    def remove(self, name: str) -> None:
        key = normalize_tag(name)
        with self._db.write() as db:
            if db.execute("DELETE FROM tags WHERE name = ?", (key,)).rowcount == 0:
                raise ImageNotFound(f"No such image: {name}")

    def of(self, image_id: Digest) -> list[str]:
        with self._db.read() as db:
            rows = db.execute("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (str(image_id),)).fetchall()
        return [row[0] for row in rows]

    def all(self) -> dict[str, Digest]:
        with self._db.read() as db:
            rows = db.execute("SELECT name, image_id FROM tags ORDER BY name").fetchall()
        return {name: Digest.parse(image_id) for name, image_id in rows}
