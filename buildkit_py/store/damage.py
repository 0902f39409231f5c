"""What `pybuild system check` found damaged: a blob or snapshot that no longer matches its digest.

A damaged layer is refused wherever it would be used (a FROM, a save, a push) with what was found, until it is
committed or pulled again, which clears the record."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from ..digest import Digest
from ..errors import StoreError
from .database import Database

__all__ = ["Damage", "DamageRecords", "DamagedContent"]


class DamagedContent(StoreError):
    """Content the store knows to be damaged was asked for."""


@dataclass(frozen=True)
class Damage:
    digest: Digest
    what: str  # "layer blob", "layer snapshot", "image config", ...
    problem: str
    found: float


class DamageRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    def mark(self, digest: Digest, what: str, problem: str) -> None:
        with self._db.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO damage (digest, what, problem, found) VALUES (?, ?, ?, ?)",
                (str(digest), what, problem, time.time()),
            )

    def get(self, digest: Digest) -> Damage | None:
        with self._db.read() as db:
            row = db.execute("SELECT what, problem, found FROM damage WHERE digest = ?", (str(digest),)).fetchone()
        return None if row is None else Damage(digest, row[0], row[1], float(row[2]))

    def all(self) -> list[Damage]:
        with self._db.read() as db:
            rows = db.execute("SELECT digest, what, problem, found FROM damage ORDER BY found").fetchall()
        return [Damage(Digest.parse(digest), what, problem, float(found)) for digest, what, problem, found in rows]

    def clear(self, digest: Digest) -> None:
        with self._db.write() as db:
            self.clear_in(db, digest)

    @staticmethod
    def clear_in(db: sqlite3.Connection, digest: Digest) -> None:
        db.execute("DELETE FROM damage WHERE digest = ?", (str(digest),))

    def refuse(self, digest: Digest) -> None:
        """DamagedContent when `digest` is known to be damaged."""
        damage = self.get(digest)
        if damage is not None:
            raise DamagedContent(
                f"{damage.what} {digest} is damaged ({damage.problem}); `pybuild system check` found it: "
                "pull, load or rebuild the image again to replace it"
            )
