"""The context stat cache: a path's (inode, size, mtime_ns, ctime_ns) -> its content digest, so that a no-op
rebuild of a large context reads only metadata.

Keys are paths, kept as their bytes (`os.fsencode`), so that a file name that is not UTF-8 is a key like any other."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .database import Database

__all__ = ["StatCache", "StatRow"]

_BATCH = 500
StatRow = tuple[int, int, int, int, str]  # inode, size, mtime_ns, ctime_ns, digest


class StatCache:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, keys: Sequence[str]) -> dict[str, StatRow]:
        """The row of each known key."""
        result: dict[str, StatRow] = {}
        with self._db.read() as db:
            for start in range(0, len(keys), _BATCH):
                batch = [os.fsencode(key) for key in keys[start : start + _BATCH]]
                marks = ",".join("?" * len(batch))
                for key, inode, size, mtime_ns, ctime_ns, digest in db.execute(
                    f"SELECT key, inode, size, mtime_ns, ctime_ns, digest FROM stat_cache WHERE key IN ({marks})",
                    batch,
                ):
                    result[os.fsdecode(key)] = (inode, size, mtime_ns, ctime_ns, digest)
        return result

    def put(self, rows: Sequence[tuple[str, int, int, int, int, str]]) -> None:
        with self._db.write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO stat_cache (key, inode, size, mtime_ns, ctime_ns, digest) VALUES (?,?,?,?,?,?)",
                [(os.fsencode(key), *values) for key, *values in rows],
            )

    def paths(self) -> list[str]:
        with self._db.read() as db:
            return [os.fsdecode(row[0]) for row in db.execute("SELECT key FROM stat_cache")]

    def delete(self, keys: Sequence[str]) -> None:
        with self._db.write() as db:
            db.executemany("DELETE FROM stat_cache WHERE key = ?", [(os.fsencode(key),) for key in keys])
