"""Named volumes: `<root>/volumes/<name>/_data`, a row each, and which containers use them.

A volume is created on first use (`ensure`, safe when several containers ask at once) and removed only when no
container record names it, checked in the same transaction as the delete.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConflictError, ContainerError, ContainerNotFound
from .database import Database

__all__ = ["VolumeRecords", "VolumeRow", "check_volume_name"]

# Docker's volume name rule (moby `volume/local`: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def check_volume_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ContainerError(
            f'"{name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
            "allowed. If you intended to pass a host directory, use absolute path"
        )
    return name


@dataclass(frozen=True)
class VolumeRow:
    name: str
    created: float
    labels: tuple[tuple[str, str], ...]
    anonymous: bool
    mountpoint: Path


class VolumeRecords:
    def __init__(self, db: Database, root: Path) -> None:
        self._db = db
        self.root = root / "volumes"

    def data_path(self, name: str) -> Path:
        return self.root / check_volume_name(name) / "_data"

    def ensure(
        self, name: str, labels: dict[str, str] | None = None, anonymous: bool = False
    ) -> tuple[VolumeRow, bool]:
        """The volume `name`, created when missing; True when this call created it."""
        data = self.data_path(name)
        data.mkdir(parents=True, exist_ok=True)
        with self._db.write() as db:
            created = (
                db.execute(
                    "INSERT OR IGNORE INTO volumes (name, created, labels, anonymous) VALUES (?, ?, ?, ?)",
                    (name, time.time(), json.dumps(labels or {}, sort_keys=True), int(anonymous)),
                ).rowcount
                == 1
            )
        return self.get(name), created

    def get(self, name: str) -> VolumeRow:
        with self._db.read() as db:
            row = db.execute("SELECT name, created, labels, anonymous FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ContainerNotFound(f"get {name}: no such volume")
        return self._volume(row)

    def all(self) -> list[VolumeRow]:
        with self._db.read() as db:
            rows = db.execute("SELECT name, created, labels, anonymous FROM volumes ORDER BY name").fetchall()
        return [self._volume(row) for row in rows]

    def users(self, name: str) -> list[str]:
        with self._db.read() as db:
            rows = db.execute("SELECT container_id FROM container_volumes WHERE volume = ?", (name,)).fetchall()
        return [row[0] for row in rows]

    def remove(self, name: str, force: bool = False) -> None:
        """Delete the volume and its data; ConflictError while a container uses it."""
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM volumes WHERE name = ?", (name,)).fetchone() is None:
                if force:
                    return
                raise ContainerNotFound(f"get {name}: no such volume")
            users = [
                row[0] for row in db.execute("SELECT container_id FROM container_volumes WHERE volume = ?", (name,))
            ]
            if users:
                raise ConflictError(f"remove {name}: volume is in use - [{', '.join(users)}]")
            db.execute("DELETE FROM volumes WHERE name = ?", (name,))
        shutil.rmtree(self.root / name, ignore_errors=True)

    def _volume(self, row: tuple[str, float, str, int]) -> VolumeRow:
        name, created, labels, anonymous = row
        return VolumeRow(
            name=name,
            created=created,
            labels=tuple(sorted(json.loads(labels).items())),
            anonymous=bool(anonymous),
            mountpoint=self.root / name / "_data",
        )
