"""What the last build of a project looked like from outside: a fingerprint of its inputs (Dockerfile, options, the
context's metadata, base image ids) and what it made. A rebuild whose fingerprint is the same is answered from here
without the build machinery (fastpath.py); anything that differs, however little, goes the whole way."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .database import Database

__all__ = ["BuildFingerprint", "FingerprintRecords"]


@dataclass(frozen=True)
class BuildFingerprint:
    project: str
    fingerprint: str
    record: str  # JSON: the image id, the base images it read, the steps and messages to show again


class FingerprintRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, project: str) -> BuildFingerprint | None:
        with self._db.read() as db:
            row = db.execute(
                "SELECT fingerprint, record FROM build_fingerprints WHERE project = ?", (project,)
            ).fetchone()
        return None if row is None else BuildFingerprint(project, row[0], row[1])

    def put(self, entry: BuildFingerprint) -> None:
        with self._db.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO build_fingerprints (project, fingerprint, record, updated) VALUES (?, ?, ?, ?)",
                (entry.project, entry.fingerprint, entry.record, time.time()),
            )

    def forget(self, project: str | None = None) -> None:
        """Forget one project's fingerprint, or every one (after a cache prune: the images may be gone)."""
        with self._db.write() as db:
            if project is None:
                db.execute("DELETE FROM build_fingerprints")
            else:
                db.execute("DELETE FROM build_fingerprints WHERE project = ?", (project,))
