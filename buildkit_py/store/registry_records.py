"""What pull and push learnt about registries: which repositories hold a blob (a push to another repository of the
same registry mounts it instead of uploading), and which image a manifest digest was pulled as (`FROM app@sha256:`
finds it without asking again). A cache: losing it costs uploads, never correctness, as the registry is always asked."""

from __future__ import annotations

from ..digest import Digest
from .database import Database

__all__ = ["RegistryRecords"]


class RegistryRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_source(self, digest: Digest, registry: str, repository: str) -> None:
        with self._db.write() as db:
            db.execute("INSERT OR IGNORE INTO blob_sources VALUES (?, ?, ?)", (str(digest), registry, repository))

    def sources(self, digest: Digest, registry: str) -> list[str]:
        """Repositories of `registry` known to hold the blob."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ? ORDER BY repository",
                (str(digest), registry),
            ).fetchall()
        return [row[0] for row in rows]

    def add_manifest(self, registry: str, repository: str, digest: Digest, image_id: Digest) -> None:
        with self._db.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO pulled_manifests VALUES (?, ?, ?, ?)",
                (registry, repository, str(digest), str(image_id)),
            )

    def image_for_manifest(self, registry: str, repository: str, digest: Digest) -> Digest | None:
        with self._db.read() as db:
            row = db.execute(
                "SELECT image_id FROM pulled_manifests WHERE registry = ? AND repository = ? AND digest = ?",
                (registry, repository, str(digest)),
            ).fetchone()
        return Digest.parse(row[0]) if row is not None else None
