"""`<root>/meta.db`: the store's one SQLite database, and the only code that opens it.

WAL mode and a busy timeout let several `pybuild` processes share one root; every change runs in one
`BEGIN IMMEDIATE` transaction, so a read-check-write (a tag compare-and-swap, a garbage collection) is atomic
across processes. A connection is per process and guarded by a lock, so threads of one build may share it.

Opening brings the schema up to date with the numbered migrations of `schema.py`, inside one write transaction, so
two processes opening an old store at once migrate it once. A database written by a newer pybuild is refused.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["BUSY_TIMEOUT_SECONDS", "Database"]

BUSY_TIMEOUT_SECONDS = 60.0


class Database:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        try:
            self._migrate()
        except sqlite3.DatabaseError as error:
            self.close()
            raise StoreError(f"the store's database {self.path} is damaged: {error}") from None

    def _migrate(self) -> None:
        with self.read() as connection:
            if int(connection.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION:
                return  # the usual case, without taking the write lock
        with self.write() as connection:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store's database {self.path} has schema version {version}, written by a newer pybuild "
                    f"(this one knows versions up to {SCHEMA_VERSION})"
                )
            for migration in MIGRATIONS:
                if migration.version > version:
                    migration.apply(connection, self.path.parent)
                    connection.execute(f"PRAGMA user_version = {migration.version}")

    @property
    def version(self) -> int:
        with self.read() as connection:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork; a child process opens its own.
        if self._connection is None or self._pid != os.getpid():
            self._connection = self._open_connection()
            self._pid = os.getpid()
        return self._connection

    def _open_connection(self) -> sqlite3.Connection:
        """A new connection in WAL mode. Switching to WAL, or recovering the WAL of a store another process is
        opening at the same moment, can answer "database is locked" without waiting for the busy timeout: such an
        answer is retried until the timeout, as a lock held by a transaction would be waited for."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        pause = 0.005
        while True:
            connection = None
            try:
                connection = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
                )
                connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
                connection.execute("PRAGMA foreign_keys = ON")
                return connection
            except sqlite3.OperationalError as error:
                if connection is not None:
                    connection.close()
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise StoreError(f"cannot open the store's database {self.path}: {error}") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.2)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN")
            try:
                yield connection
            finally:
                connection.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (BEGIN IMMEDIATE) so that it never fails halfway on a lock upgrade."""
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None
