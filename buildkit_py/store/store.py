"""The local store: blobs, snapshots and `meta.db` under one root, shared safely by concurrent `pybuild` processes.

    <root>/blobs/sha256/<hex>      layer tars (uncompressed, named by diff_id) and image configs (named by image id)
    <root>/snapshots/<16 hex>      unpacked layers, used as overlay lowerdirs
    <root>/tmp/                    temp files and work dirs, named after their owner process
    <root>/meta.db                 layers, images, tags, build cache records, the context stat cache

Invariants, kept inside one SQLite write transaction each:
- an image, and a build cache record, only ever name layers that are recorded (and whose blob exists);
- a layer is deleted (row, blob, snapshot) only when no image and no cache record names it any more.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Self

from ..digest import Digest
from ..errors import ConflictError, DigestMismatch, ImageNotFound, InvalidDigest, StoreError
from ..image.config import ImageConfig
from ..image.reference import InvalidReference, parse_reference
from .content import ContentStore, checked_digest
from .locking import owner_tag, sweep_dead_owners
from .metadata import Metadata
from .snapshots import SnapshotStore

__all__ = ["ABSENT", "Absent", "CacheRecord", "ImageSummary", "Store", "default_root", "normalize_tag"]

MIN_ID_PREFIX = 4
_STAT_BATCH = 500
_HEX = frozenset("0123456789abcdef")


class Absent(Enum):
    """`tag(..., expected_previous=ABSENT)`: the tag must not exist yet."""

    ABSENT = "absent"


ABSENT = Absent.ABSENT


def default_root() -> Path:
    """$PYBUILD_ROOT, else /var/lib/pybuild for root, else ~/.local/share/pybuild."""
    configured = os.environ.get("PYBUILD_ROOT")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/pybuild")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "pybuild"


def normalize_tag(name: str) -> str:
    """The key a tag is filed under: the familiar `name:tag` (`busybox:latest`, `localhost:5000/x:1`)."""
    reference = parse_reference(name)
    if reference.digest is not None:
        raise InvalidReference(f"a tag cannot contain a digest: {name}")
    return reference.familiar


@dataclass(frozen=True)
class ImageSummary:
    image_id: Digest
    tags: tuple[str, ...]
    created: str
    size: int


@dataclass(frozen=True)
class CacheRecord:
    key: Digest
    chain: tuple[Digest, ...]
    description: str
    created: float
    last_used: float


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = self.root / "tmp"
        self.blobs = ContentStore(self.root)
        self.snapshots = SnapshotStore(self.root)
        self.meta = Metadata(self.root / "meta.db")
        sweep_dead_owners(self.tmp_dir)

    def close(self) -> None:
        self.meta.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- temp space ----------------------------------------------------------------------------------------------

    @contextmanager
    def temp_dir(self, prefix: str = "") -> Iterator[Path]:
        """A fresh folder under `<root>/tmp` (same filesystem as blobs and snapshots), removed on exit."""
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}{owner_tag()}", dir=self.tmp_dir))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextmanager
    def temp_path(self, prefix: str = "") -> Iterator[Path]:
        """A path for a temp file under `<root>/tmp` (not created); removed on exit if it still exists."""
        fd, name = tempfile.mkstemp(prefix=f"{prefix}{owner_tag()}", dir=self.tmp_dir)
        os.close(fd)
        path = Path(name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    # -- layers --------------------------------------------------------------------------------------------------

    def commit_layer(self, tar_path: Path, diff_id: Digest, size: int, snapshot: Path | None = None) -> None:
        """Move an uncompressed layer tar (a temp file under this root) into the blobs as `diff_id`, record the layer,
        and, when given, commit `snapshot` as its unpacked form. The tar is hashed first: DigestMismatch if it is not
        `diff_id`, StoreError if it is not `size` bytes."""
        diff_id = checked_digest(diff_id)
        actual, actual_size = self.blobs.hash_file(tar_path, diff_id.algorithm)
        if actual != diff_id:
            raise DigestMismatch(f"layer tar {tar_path} hashes to {actual}, not {diff_id}")
        if actual_size != size:
            raise StoreError(f"layer {diff_id} is {actual_size} bytes, not {size}")
        with open(tar_path, "rb") as file:
            os.fsync(file.fileno())
        with self.meta.write() as db:
            self.blobs.place(tar_path, diff_id)
            db.execute(
                "INSERT INTO layers (diff_id, size, added) VALUES (?, ?, ?) ON CONFLICT(diff_id) DO UPDATE SET added = ?",
                (str(diff_id), size, time.time(), time.time()),
            )
            kept = snapshot is not None and self.snapshots.try_commit(snapshot, diff_id)
        if snapshot is not None and not kept:
            shutil.rmtree(snapshot, ignore_errors=True)

    def has_layer(self, diff_id: Digest) -> bool:
        with self.meta.read() as db:
            row = db.execute("SELECT 1 FROM layers WHERE diff_id = ?", (str(checked_digest(diff_id)),)).fetchone()
        return row is not None and self.blobs.has(diff_id)

    def layer_size(self, diff_id: Digest) -> int:
        with self.meta.read() as db:
            row = db.execute("SELECT size FROM layers WHERE diff_id = ?", (str(checked_digest(diff_id)),)).fetchone()
        if row is None:
            raise StoreError(f"layer not in the store: {diff_id}")
        return int(row[0])

    def open_layer(self, diff_id: Digest) -> BinaryIO:
        """The layer's uncompressed tar; reading it to the end verifies it."""
        if not self.has_layer(diff_id):
            raise StoreError(f"layer not in the store: {diff_id}")
        return self.blobs.open(diff_id)

    def snapshot_path(self, diff_id: Digest) -> Path:
        """The layer unpacked (overlay form), unpacking it from its blob first when needed."""
        diff_id = checked_digest(diff_id)
        path = self.snapshots.path(diff_id)
        if path.is_dir():
            return path
        from ..layer.unpack import unpack_layer

        with self.temp_dir("unpack") as work:
            target = work / "root"
            target.mkdir()
            with self.open_layer(diff_id) as stream:
                unpack_layer(stream, target)
            with self.meta.write() as db:
                if db.execute("SELECT 1 FROM layers WHERE diff_id = ?", (str(diff_id),)).fetchone() is None:
                    raise StoreError(f"layer was removed while it was unpacked: {diff_id}")
                self.snapshots.try_commit(target, diff_id)
        return path

    def _layers_missing(self, db: sqlite3.Connection, chain: Sequence[Digest]) -> list[Digest]:
        missing = []
        for diff_id in chain:
            row = db.execute("SELECT 1 FROM layers WHERE diff_id = ?", (str(diff_id),)).fetchone()
            if row is None or not self.blobs.has(diff_id):
                missing.append(diff_id)
        return missing

    # -- images --------------------------------------------------------------------------------------------------

    def put_image(self, config: ImageConfig) -> Digest:
        """Store an image config; its sha256 is the image id (as Docker's). Every layer must be committed first."""
        return self.put_image_bytes(config.to_bytes(), config)

    def put_image_bytes(self, data: bytes, config: ImageConfig | None = None) -> Digest:
        """Store an image config byte for byte (one loaded or pulled keeps its id, the sha256 of these bytes)."""
        if config is None:
            config = ImageConfig.from_bytes(data)
        with self.meta.write() as db:
            missing = self._layers_missing(db, config.diff_ids)
            if missing:
                raise StoreError(f"image names layers that are not in the store: {', '.join(map(str, missing))}")
            image_id = self.blobs.put_bytes(data)
            exists = db.execute("SELECT 1 FROM images WHERE image_id = ?", (str(image_id),)).fetchone()
            if exists is None:
                db.execute(
                    "INSERT INTO images (image_id, created, added) VALUES (?, ?, ?)",
                    (str(image_id), config.created, time.time()),
                )
                db.executemany(
                    "INSERT INTO image_layers (image_id, position, diff_id) VALUES (?, ?, ?)",
                    [(str(image_id), position, str(d)) for position, d in enumerate(config.diff_ids)],
                )
        return image_id

    def has_image(self, image_id: Digest) -> bool:
        with self.meta.read() as db:
            return db.execute("SELECT 1 FROM images WHERE image_id = ?", (str(image_id),)).fetchone() is not None

    def image_config_bytes(self, image_id: Digest) -> bytes:
        if not self.has_image(image_id):
            raise ImageNotFound(f"No such image: {image_id}")
        return self.blobs.read_bytes(image_id)

    def image_config(self, image_id: Digest) -> ImageConfig:
        return ImageConfig.from_bytes(self.image_config_bytes(image_id))

    def resolve(self, name_or_id: str) -> Digest:
        """A tag (`name`, `name:tag`, `host:5000/a/b:tag`), a full id (`sha256:<hex>` or `<64 hex>`), or a unique
        id prefix of at least 4 hex digits, looked up in Docker's order. ImageNotFound: "No such image: NAME"."""
        return self.lookup(name_or_id)[0]

    def lookup(self, text: str) -> tuple[Digest, str | None]:
        """Like resolve: (image id, the tag it was found by, or None when `text` was taken as an id or id prefix)."""
        full_id = _full_id(text)
        with self.meta.read() as db:
            if full_id is not None:
                if db.execute("SELECT 1 FROM images WHERE image_id = ?", (str(full_id),)).fetchone():
                    return full_id, None
                raise ImageNotFound(f"No such image: {text}")
            try:
                reference = parse_reference(text)
            except InvalidReference:
                reference = None
            if reference is not None:
                row = db.execute("SELECT image_id FROM tags WHERE name = ?", (reference.familiar,)).fetchone()
                if row is not None:
                    image_id = Digest.parse(row[0])
                    # Docker: text that is also a prefix of the image's id counts as an id (matters for rmi).
                    by_id = image_id.hex.startswith(text.removeprefix("sha256:"))
                    return image_id, None if by_id else reference.familiar
            prefix = text.removeprefix("sha256:")
            if len(prefix) >= MIN_ID_PREFIX and set(prefix) <= _HEX:
                rows = db.execute(
                    "SELECT image_id FROM images WHERE image_id >= ? AND image_id < ? LIMIT 2",
                    (f"sha256:{prefix}", f"sha256:{prefix}g"),
                ).fetchall()
                if len(rows) == 1:
                    return Digest.parse(rows[0][0]), None
                if len(rows) > 1:
                    raise ImageNotFound(f"No such image: {text} (the id prefix is ambiguous)")
        if reference is None:
            # Not a tag, not an id: say why the text is not a reference, as Docker does.
            parse_reference(text)
        raise ImageNotFound(f"No such image: {text}")

    def tag(self, name: str, image_id: Digest, expected_previous: Digest | Absent | None = None) -> None:
        """Point tag `name` at an image. With `expected_previous`, only if the tag still points at that image (or, with
        ABSENT, does not exist): ConflictError otherwise. None means unconditionally."""
        key = normalize_tag(name)
        with self.meta.write() as db:
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

    def untag(self, name: str) -> None:
        key = normalize_tag(name)
        with self.meta.write() as db:
            if db.execute("DELETE FROM tags WHERE name = ?", (key,)).rowcount == 0:
                raise ImageNotFound(f"No such image: {name}")

    def tags_of(self, image_id: Digest) -> list[str]:
        with self.meta.read() as db:
            rows = db.execute("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (str(image_id),)).fetchall()
        return [row[0] for row in rows]

    def list_images(self) -> list[ImageSummary]:
        """Every image, newest first (by created time, then by when it was stored), with its tags and layer size."""
        with self.meta.read() as db:
            images = db.execute(
                "SELECT i.image_id, i.created, COALESCE(SUM(l.size), 0) FROM images i "
                "LEFT JOIN image_layers il ON il.image_id = i.image_id LEFT JOIN layers l ON l.diff_id = il.diff_id "
                "GROUP BY i.image_id ORDER BY i.created DESC, i.added DESC"
            ).fetchall()
            tags: dict[str, list[str]] = {}
            for name, image_id in db.execute("SELECT name, image_id FROM tags ORDER BY name"):
                tags.setdefault(image_id, []).append(name)
        return [
            ImageSummary(Digest.parse(image_id), tuple(tags.get(image_id, ())), created, int(size))
            for image_id, created, size in images
        ]

    def remove_image(self, name_or_id: str, force: bool = False) -> list[str]:
        """`docker rmi`: a tag is untagged, and the image deleted once no tag is left; an id deletes the image after
        untagging all its tags, which needs `force` when there are several. Returns Docker's report lines."""
        lines: list[str] = []
        image_id, tag_key = self.lookup(name_or_id)
        by_id = tag_key is None
        deleted_layers: list[Digest] = []
        trash: list[Path] = []
        with self.meta.write() as db:
            tags = [
                row[0] for row in db.execute("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (str(image_id),))
            ]
            if not by_id and tag_key is not None:
                db.execute("DELETE FROM tags WHERE name = ? AND image_id = ?", (tag_key, str(image_id)))
                lines.append(f"Untagged: {tag_key}")
                if len(tags) > 1:
                    return lines
            else:
                if len(tags) > 1 and not force:
                    raise ConflictError(
                        f"conflict: unable to delete {image_id.short} (must be forced) - "
                        "image is referenced in multiple repositories"
                    )
                for tag in tags:
                    db.execute("DELETE FROM tags WHERE name = ?", (tag,))
                    lines.append(f"Untagged: {tag}")
            chain = [
                Digest.parse(row[0])
                for row in db.execute(
                    "SELECT diff_id FROM image_layers WHERE image_id = ? ORDER BY position", (str(image_id),)
                )
            ]
            db.execute("DELETE FROM image_layers WHERE image_id = ?", (str(image_id),))
            db.execute("DELETE FROM images WHERE image_id = ?", (str(image_id),))
            self.blobs.delete(image_id)
            lines.append(f"Deleted: {image_id}")
            deleted_layers, trash = self._collect_layers(db, chain)
        for folder in trash:
            shutil.rmtree(folder, ignore_errors=True)
        lines.extend(f"Deleted: {diff_id}" for diff_id in reversed(deleted_layers))
        return lines

    def _collect_layers(self, db: sqlite3.Connection, candidates: Sequence[Digest]) -> tuple[list[Digest], list[Path]]:
        """Inside a write transaction: delete the candidates no image or cache record names. Snapshots are renamed
        into tmp (returned, for deletion once the transaction is over) so the lock is not held during a long rmtree."""
        deleted: list[Digest] = []
        trash: list[Path] = []
        for diff_id in dict.fromkeys(candidates):
            text = str(diff_id)
            if db.execute("SELECT 1 FROM image_layers WHERE diff_id = ? LIMIT 1", (text,)).fetchone():
                continue
            if db.execute("SELECT 1 FROM cache_layers WHERE diff_id = ? LIMIT 1", (text,)).fetchone():
                continue
            if db.execute("DELETE FROM layers WHERE diff_id = ?", (text,)).rowcount == 0:
                continue
            self.blobs.delete(diff_id)
            folder = self.snapshots.detach(diff_id)
            if folder is not None:
                trash.append(folder)
            deleted.append(diff_id)
        return deleted, trash

    # -- build cache records -------------------------------------------------------------------------------------

    def cache_get(self, key: Digest) -> tuple[Digest, ...] | None:
        """The layer chain recorded for a cache key, or None. A record whose layers went missing is a miss (and is
        dropped). A hit updates last_used."""
        with self.meta.write() as db:
            if db.execute("SELECT 1 FROM cache WHERE key = ?", (str(key),)).fetchone() is None:
                return None
            chain = tuple(
                Digest.parse(row[0])
                for row in db.execute("SELECT diff_id FROM cache_layers WHERE key = ? ORDER BY position", (str(key),))
            )
            if self._layers_missing(db, chain):
                db.execute("DELETE FROM cache WHERE key = ?", (str(key),))
                return None
            db.execute("UPDATE cache SET last_used = ? WHERE key = ?", (time.time(), str(key)))
        return chain

    def cache_put(self, key: Digest, chain: tuple[Digest, ...], description: str = "") -> None:
        now = time.time()
        with self.meta.write() as db:
            missing = self._layers_missing(db, chain)
            if missing:
                raise StoreError(f"cache record names layers that are not in the store: {', '.join(map(str, missing))}")
            db.execute("DELETE FROM cache WHERE key = ?", (str(key),))
            db.execute(
                "INSERT INTO cache (key, description, created, last_used) VALUES (?, ?, ?, ?)",
                (str(key), description, now, now),
            )
            db.executemany(
                "INSERT INTO cache_layers (key, position, diff_id) VALUES (?, ?, ?)",
                [(str(key), position, str(d)) for position, d in enumerate(chain)],
            )

    def cache_created(self, keys: Sequence[Digest]) -> dict[Digest, float]:
        """When each of `keys` was first recorded (absent keys are left out)."""
        found: dict[Digest, float] = {}
        with self.meta.read() as db:
            for key in keys:
                row = db.execute("SELECT created FROM cache WHERE key = ?", (str(key),)).fetchone()
                if row is not None:
                    found[key] = float(row[0])
        return found

    def cache_records(self) -> list[CacheRecord]:
        with self.meta.read() as db:
            records = db.execute("SELECT key, description, created, last_used FROM cache ORDER BY last_used DESC")
            chains: dict[str, list[Digest]] = {}
            for key, diff_id in db.execute("SELECT key, diff_id FROM cache_layers ORDER BY key, position"):
                chains.setdefault(key, []).append(Digest.parse(diff_id))
            return [
                CacheRecord(Digest.parse(key), tuple(chains.get(key, ())), description, created, last_used)
                for key, description, created, last_used in records.fetchall()
            ]

    def cache_delete(self, key: Digest) -> list[Digest]:
        """Delete a cache record, and the layers nothing names any more; returns the deleted layers' diff_ids."""
        with self.meta.write() as db:
            chain = [
                Digest.parse(row[0])
                for row in db.execute("SELECT diff_id FROM cache_layers WHERE key = ?", (str(key),))
            ]
            db.execute("DELETE FROM cache WHERE key = ?", (str(key),))
            deleted, trash = self._collect_layers(db, chain)
        for folder in trash:
            shutil.rmtree(folder, ignore_errors=True)
        return deleted

    # -- garbage collection helpers ------------------------------------------------------------------------------

    def layer_sizes(self) -> dict[Digest, int]:
        """Every recorded layer's size in bytes (its uncompressed tar), by diff_id."""
        with self.meta.read() as db:
            rows = db.execute("SELECT diff_id, size FROM layers").fetchall()
        return {Digest.parse(diff_id): int(size) for diff_id, size in rows}

    def image_chains(self) -> dict[Digest, tuple[Digest, ...]]:
        """Every image's layer chain, by image id, read from meta.db (no config blob is opened)."""
        chains: dict[Digest, list[Digest]] = {}
        with self.meta.read() as db:
            for image_id in db.execute("SELECT image_id FROM images"):
                chains[Digest.parse(image_id[0])] = []
            rows = db.execute("SELECT image_id, diff_id FROM image_layers ORDER BY image_id, position").fetchall()
            for image_id, diff_id in rows:
                chains.setdefault(Digest.parse(image_id), []).append(Digest.parse(diff_id))
        return {image_id: tuple(chain) for image_id, chain in chains.items()}

    def delete_unreferenced_layers(self, added_before: float) -> list[Digest]:
        """Delete the layers no image and no cache record names that were stored before `added_before` (a layer
        a running build has just committed is not named by anything yet: the grace period keeps it)."""
        with self.meta.write() as db:
            rows = db.execute(
                "SELECT diff_id FROM layers l WHERE added < ? "
                "AND NOT EXISTS (SELECT 1 FROM image_layers il WHERE il.diff_id = l.diff_id) "
                "AND NOT EXISTS (SELECT 1 FROM cache_layers cl WHERE cl.diff_id = l.diff_id)",
                (added_before,),
            ).fetchall()
            deleted, trash = self._collect_layers(db, [Digest.parse(row[0]) for row in rows])
        for folder in trash:
            shutil.rmtree(folder, ignore_errors=True)
        return deleted

    # -- context stat cache --------------------------------------------------------------------------------------

    def stat_cache_get(self, keys: list[str]) -> dict[str, tuple[int, int, int, int, str]]:
        """(inode, size, mtime_ns, ctime_ns, digest) per known key."""
        result: dict[str, tuple[int, int, int, int, str]] = {}
        with self.meta.read() as db:
            for start in range(0, len(keys), _STAT_BATCH):
                batch = keys[start : start + _STAT_BATCH]
                marks = ",".join("?" * len(batch))
                for key, inode, size, mtime_ns, ctime_ns, digest in db.execute(
                    f"SELECT key, inode, size, mtime_ns, ctime_ns, digest FROM stat_cache WHERE key IN ({marks})",
                    batch,
                ):
                    result[key] = (inode, size, mtime_ns, ctime_ns, digest)
        return result

    def stat_cache_put(self, rows: list[tuple[str, int, int, int, int, str]]) -> None:
        with self.meta.write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO stat_cache (key, inode, size, mtime_ns, ctime_ns, digest) VALUES (?,?,?,?,?,?)",
                rows,
            )

    def stat_cache_keys(self) -> list[str]:
        with self.meta.read() as db:
            return [row[0] for row in db.execute("SELECT key FROM stat_cache")]

    def stat_cache_delete(self, keys: Sequence[str]) -> None:
        with self.meta.write() as db:
            db.executemany("DELETE FROM stat_cache WHERE key = ?", [(key,) for key in keys])


def _full_id(text: str) -> Digest | None:
    """`sha256:<64 hex>` or bare `<64 hex>` as an image id; None for anything else."""
    candidate = text if text.startswith("sha256:") else f"sha256:{text}"
    try:
        digest = Digest.parse(candidate)
    except InvalidDigest:
        return None
    return digest if digest.algorithm == "sha256" else None
