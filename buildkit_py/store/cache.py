"""Build cache records: a cache key (blake3 of a step and its inputs) -> the layer chain the step produced.

A record only ever names layers that are recorded (checked in the writing transaction); a record whose layers went
missing is a miss, and is dropped when it is looked up."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..digest import Digest
from ..errors import StoreError
from .database import Database
from .layers import LayerStore, remove_trash

__all__ = ["CacheRecord", "CacheStore"]


@dataclass(frozen=True)
class CacheRecord:
    key: Digest
    chain: tuple[Digest, ...]
    description: str
    created: float
    last_used: float


class CacheStore:
    def __init__(self, db: Database, layers: LayerStore) -> None:
        self._db = db
        self._layers = layers

    def get(self, key: Digest) -> tuple[Digest, ...] | None:
        """The layer chain recorded for a cache key, or None. A hit updates last_used."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[Digest]) -> dict[Digest, tuple[Digest, ...]]:
        """`get` of each key that has a record, in one transaction; a layer the chains share is looked for once."""
        chains: dict[Digest, tuple[Digest, ...]] = {}
        found: dict[Digest, tuple[Digest, ...]] = {}
        now = time.time()
        with self._db.write() as db:
            for key in dict.fromkeys(keys):
                if db.execute("SELECT 1 FROM cache WHERE key = ?", (str(key),)).fetchone() is None:
                    continue
                rows = db.execute("SELECT diff_id FROM cache_layers WHERE key = ? ORDER BY position", (str(key),))
                chains[key] = tuple(Digest.parse(row[0]) for row in rows)
            missing = set(self._layers.missing(db, list(dict.fromkeys(d for chain in chains.values() for d in chain))))
            for key, chain in chains.items():
                if missing.intersection(chain):
                    db.execute("DELETE FROM cache WHERE key = ?", (str(key),))
                else:
                    db.execute("UPDATE cache SET last_used = ? WHERE key = ?", (now, str(key)))
                    found[key] = chain
        return found

    def put(self, key: Digest, chain: tuple[Digest, ...], description: str = "", created: float | None = None) -> None:
        """Record what `key` gave. `created` is when it was first built, if not now (a record from an imported
        cache keeps its time, so the history of an image built from it is the same as where it was built)."""
        now = time.time()
        with self._db.write() as db:
            missing = self._layers.missing(db, chain)
            if missing:
                raise StoreError(f"cache record names layers that are not in the store: {', '.join(map(str, missing))}")
            db.execute("DELETE FROM cache WHERE key = ?", (str(key),))
            db.execute(
                "INSERT INTO cache (key, description, created, last_used) VALUES (?, ?, ?, ?)",
                (str(key), description, now if created is None else created, now),
            )
            db.executemany(
                "INSERT INTO cache_layers (key, position, diff_id) VALUES (?, ?, ?)",
                [(str(key), position, str(d)) for position, d in enumerate(chain)],
            )

    def created(self, keys: Sequence[Digest]) -> dict[Digest, float]:
        """When each of `keys` was first recorded (absent keys are left out)."""
        found: dict[Digest, float] = {}
        with self._db.read() as db:
            for key in keys:
                row = db.execute("SELECT created FROM cache WHERE key = ?", (str(key),)).fetchone()
                if row is not None:
                    found[key] = float(row[0])
        return found

    def records(self) -> list[CacheRecord]:
        with self._db.read() as db:
            records = db.execute("SELECT key, description, created, last_used FROM cache ORDER BY last_used DESC")
            chains: dict[str, list[Digest]] = {}
            for key, diff_id in db.execute("SELECT key, diff_id FROM cache_layers ORDER BY key, position"):
                chains.setdefault(key, []).append(Digest.parse(diff_id))
            return [
                CacheRecord(Digest.parse(key), tuple(chains.get(key, ())), description, created, last_used)
                for key, description, created, last_used in records.fetchall()
            ]

    def delete(self, key: Digest) -> list[Digest]:
        """Delete a cache record, and the layers nothing names any more; returns the deleted layers' diff_ids."""
        with self._db.write() as db:
            chain = [
                Digest.parse(row[0])
                for row in db.execute("SELECT diff_id FROM cache_layers WHERE key = ?", (str(key),))
            ]
            db.execute("DELETE FROM cache WHERE key = ?", (str(key),))
            deleted, trash = self._layers.collect(db, chain)
        remove_trash(trash)
        return deleted
