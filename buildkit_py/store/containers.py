"""Container records: one row per container, its state, and which volumes it uses.

The store knows no container format: the container's spec is kept as the JSON text its owner (buildkit_py.container)
wrote. Every change is compare-and-swap inside one write transaction: a state change names the states it may start
from (`transition`), so two `pybuild` commands racing on one container cannot both win, and `generation` counts the
changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import ConflictError, ContainerNotFound
from .database import Database

__all__ = ["ContainerRecords", "ContainerRow"]

_MIN_PREFIX = 1


@dataclass(frozen=True)
class ContainerRow:
    """A container as the store keeps it. `spec` is JSON written by buildkit_py.container; times are Unix seconds."""

    container_id: str
    name: str
    image_id: str
    image_name: str
    created: float
    spec: str
    state: str
    pid: int = 0
    monitor_pid: int = 0
    monitor_start: int = 0
    exit_code: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    error: str = ""
    restart_count: int = 0
    generation: int = 0
    ports: str = ""  # while it runs: JSON, its published ports with the host ports they were given


_COLUMNS = tuple(field.name for field in fields(ContainerRow))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM containers"
_MUTABLE = frozenset(_COLUMNS) - {"container_id", "created", "generation"}


def _row(values: Sequence[Any]) -> ContainerRow:
    return ContainerRow(*values)


def name_in_use(name: str, owner: str) -> ConflictError:
    return ConflictError(
        f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


class ContainerRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, row: ContainerRow, volumes: Sequence[str] = ()) -> None:
        """Record a new container and the (already recorded) volumes it uses; ConflictError when the name is taken."""
        with self._db.write() as db:
            owner = db.execute("SELECT container_id FROM containers WHERE name = ?", (row.name,)).fetchone()
            if owner is not None:
                raise name_in_use(row.name, owner[0])
            db.execute(
                f"INSERT INTO containers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                tuple(getattr(row, column) for column in _COLUMNS),
            )
            db.executemany(
                "INSERT OR IGNORE INTO container_volumes (container_id, volume) VALUES (?, ?)",
                [(row.container_id, volume) for volume in volumes],
            )

    def find(self, text: str) -> ContainerRow:
        """Docker's lookup: a full id, a name, then a unique id prefix. ContainerNotFound otherwise."""
        with self._db.read() as db:
            return self._find_in(db, text)

    @staticmethod
    def _find_in(db: sqlite3.Connection, text: str) -> ContainerRow:
        found = db.execute(f"{_SELECT} WHERE container_id = ?", (text,)).fetchone()
        if found is None:
            found = db.execute(f"{_SELECT} WHERE name = ?", (text.removeprefix("/"),)).fetchone()
        if found is None and len(text) >= _MIN_PREFIX and all(c in "0123456789abcdef" for c in text):
            matches = db.execute(
                f"{_SELECT} WHERE substr(container_id, 1, ?) = ? LIMIT 2", (len(text), text)
            ).fetchall()
            if len(matches) > 1:
                raise ContainerNotFound(f"Multiple IDs found with provided prefix: {text}")
            found = matches[0] if matches else None
        if found is None:
            raise ContainerNotFound(f"No such container: {text}")
        return _row(found)

    def get(self, container_id: str) -> ContainerRow | None:
        with self._db.read() as db:
            found = db.execute(f"{_SELECT} WHERE container_id = ?", (container_id,)).fetchone()
        return None if found is None else _row(found)

    def all(self) -> list[ContainerRow]:
        """Every container, newest first (as `docker ps` lists them)."""
        with self._db.read() as db:
            return [_row(values) for values in db.execute(f"{_SELECT} ORDER BY created DESC, rowid DESC")]

    def transition(self, container_id: str, from_states: Collection[str] | None, **changes: Any) -> ContainerRow:
        """Apply `changes` if the container is in one of `from_states` (any state when None); returns the new row.
        ContainerNotFound when it is gone, ConflictError (naming its state) when it is in another state."""
        unknown = set(changes) - _MUTABLE
        if unknown:
            raise ValueError(f"not a mutable container field: {sorted(unknown)}")
        with self._db.write() as db:
            current = db.execute(f"{_SELECT} WHERE container_id = ?", (container_id,)).fetchone()
            if current is None:
                raise ContainerNotFound(f"No such container: {container_id}")
            row = _row(current)
            if from_states is not None and row.state not in from_states:
                raise ConflictError(f"container {container_id[:12]} is {row.state}")
            if "name" in changes and changes["name"] != row.name:
                owner = db.execute("SELECT container_id FROM containers WHERE name = ?", (changes["name"],)).fetchone()
                if owner is not None:
                    raise name_in_use(changes["name"], owner[0])
            updated = replace(row, generation=row.generation + 1, **changes)
            assignments = ", ".join(f"{column} = ?" for column in (*changes, "generation"))
            db.execute(
                f"UPDATE containers SET {assignments} WHERE container_id = ? AND generation = ?",
                (*changes.values(), updated.generation, container_id, row.generation),
            )
        return updated

    def delete(self, container_id: str, from_states: Collection[str]) -> list[str]:
        """Remove the record if the container is in one of `from_states`; returns the volumes it used."""
        with self._db.write() as db:
            current = db.execute("SELECT state FROM containers WHERE container_id = ?", (container_id,)).fetchone()
            if current is None:
                raise ContainerNotFound(f"No such container: {container_id}")
            if current[0] not in from_states:
                raise ConflictError(f"container {container_id[:12]} is {current[0]}")
            volumes = [
                row[0]
                for row in db.execute("SELECT volume FROM container_volumes WHERE container_id = ?", (container_id,))
            ]
            db.execute("DELETE FROM containers WHERE container_id = ?", (container_id,))
        return volumes

    def volumes_of(self, container_id: str) -> list[str]:
        with self._db.read() as db:
            rows = db.execute("SELECT volume FROM container_volumes WHERE container_id = ?", (container_id,))
            return [row[0] for row in rows]

    def using_image(self, image_id: str) -> list[ContainerRow]:
        with self._db.read() as db:
            return [_row(values) for values in db.execute(f"{_SELECT} WHERE image_id = ?", (image_id,))]
