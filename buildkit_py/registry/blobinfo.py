"""What pull and push remember about blobs, beside the store: `<root>/registry/blobs.db`.

- where a compressed blob is known to live (registry, repository): a push to another repository of the same
  registry mounts it from there instead of uploading it;
- which compressed blobs hold a layer (diff_id -> digest, size, media type): a push finds a layer the registry has
  already without compressing it again;
- which image a manifest digest was pulled as: `FROM app@sha256:...` finds it in the store without asking again.

It is a cache: losing it costs uploads or compression, never correctness (the registry is always asked).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..digest import Digest

__all__ = ["BlobInfo", "CompressedForm"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blob_sources (
    digest TEXT NOT NULL, registry TEXT NOT NULL, repository TEXT NOT NULL,
    PRIMARY KEY (digest, registry, repository)
);
CREATE TABLE IF NOT EXISTS compressed_forms (
    diff_id TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL, media_type TEXT NOT NULL,
    PRIMARY KEY (diff_id, digest)
);
CREATE TABLE IF NOT EXISTS manifests (
    registry TEXT NOT NULL, repository TEXT NOT NULL, digest TEXT NOT NULL, image_id TEXT NOT NULL,
    PRIMARY KEY (registry, repository, digest)
);
"""


@dataclass(frozen=True)
class CompressedForm:
    diff_id: Digest
    digest: Digest
    size: int
    media_type: str


class BlobInfo:
    def __init__(self, store_root: Path) -> None:
        folder = Path(store_root) / "registry"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "blobs.db"

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.executescript(_SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def add_source(self, digest: Digest, registry: str, repository: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO blob_sources VALUES (?, ?, ?)", (str(digest), registry, repository))

    def sources(self, digest: Digest, registry: str) -> list[str]:
        """Repositories of `registry` known to hold the blob."""
        with self._db() as db:
            rows = db.execute(
                "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ? ORDER BY repository",
                (str(digest), registry),
            ).fetchall()
        return [row[0] for row in rows]

    def add_form(self, form: CompressedForm) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO compressed_forms VALUES (?, ?, ?, ?)",
                (str(form.diff_id), str(form.digest), form.size, form.media_type),
            )

    def forms(self, diff_id: Digest) -> list[CompressedForm]:
        with self._db() as db:
            rows = db.execute(
                "SELECT digest, size, media_type FROM compressed_forms WHERE diff_id = ?", (str(diff_id),)
            ).fetchall()
        return [CompressedForm(diff_id, Digest.parse(digest), size, media_type) for digest, size, media_type in rows]

    def add_manifest(self, registry: str, repository: str, digest: Digest, image_id: Digest) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?)",
                (registry, repository, str(digest), str(image_id)),
            )

    def image_for_manifest(self, registry: str, repository: str, digest: Digest) -> Digest | None:
        with self._db() as db:
            row = db.execute(
                "SELECT image_id FROM manifests WHERE registry = ? AND repository = ? AND digest = ?",
                (registry, repository, str(digest)),
            ).fetchone()
        return Digest.parse(row[0]) if row is not None else None
