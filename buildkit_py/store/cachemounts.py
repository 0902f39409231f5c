"""Cache mounts (`RUN --mount=type=cache`): folders under `<root>/cache-mounts/` that steps reuse across builds.

    <root>/cache-mounts/<instance>/lock          flock'd by every step that uses the instance, for as long as it runs
    <root>/cache-mounts/<instance>/create.lock   held while a new instance's data folder is made
    <root>/cache-mounts/<instance>/data          what the step sees at the mount's target

One id may have several instances. `shared` uses instance 0 under a shared lock, so any number of steps use it at
once; `locked` takes the same lock exclusively, so its steps run one at a time, across processes; `private` takes any
instance no other step holds, and makes a new one when all are busy. A record per instance (`cache_mounts` table)
lets `cache du` list them and `cache prune` remove them: a removal takes the exclusive lock without waiting, so an
instance in use is never removed, and a step that was waiting on a removed instance's lock starts over.

What steps write here is as hostile as anything they write: it is walked and removed without following a symlink,
and read only by `--cache-to ...,cache-mounts=true` (remotecache/mounttar.py, which follows no symlink either).
`reading` holds an instance shared while it is exported; `restore` puts a folder imported with `--cache-from` in
place of an instance that is missing or empty, never over one a step holds or one with content.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import blake3

from .database import Database

__all__ = ["CacheMountRecord", "CacheMountStore", "CacheMountUsage", "CacheMountWaitCancelled"]

SHARINGS = ("shared", "private", "locked")


@dataclass(frozen=True)
class CacheMountRecord:
    id: str
    instance: int
    folder: str  # its name under <root>/cache-mounts
    created: float
    last_used: float


@dataclass(frozen=True)
class CacheMountUsage:
    record: CacheMountRecord
    size: int  # bytes of the regular files in it
    in_use: bool  # a step holds it right now


def _folder_name(cache_id: str, instance: int) -> str:
    return f"{blake3.blake3(cache_id.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.{instance}"


_CANCEL_CHECK_SECONDS = 0.1


class CacheMountWaitCancelled(Exception):
    """The build was cancelled while its step waited for a cache mount another step holds."""


def _lock(fd: int, operation: int, cancelled: Callable[[], bool]) -> None:
    """flock `fd`, waiting as long as it takes unless `cancelled()` turns true. The wait is a real flock(2) (the
    kernel queues it, /proc/locks shows it) made by a helper thread on a duplicate of `fd`, so that a build that is
    interrupted can stop waiting: a thread blocked in flock could never be joined. A lock the helper gets after the
    caller gave up (and closed `fd`) goes with the helper's duplicate."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    duplicate = os.dup(fd)  # the same open file description: a lock taken through it is fd's lock
    granted = threading.Event()
    failures: list[OSError] = []

    def wait() -> None:
        try:
            fcntl.flock(duplicate, operation)
        except OSError as error:
            failures.append(error)
        finally:
            os.close(duplicate)
            granted.set()

    threading.Thread(target=wait, name="cache-mount-lock", daemon=True).start()
    while not granted.wait(_CANCEL_CHECK_SECONDS):
        if cancelled():
            raise CacheMountWaitCancelled
    if failures:
        raise failures[0]


def _never() -> bool:
    return False


def _open_lock(folder: Path) -> int:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _is_current(fd: int, folder: Path) -> bool:
    """Whether the lock we hold is still the instance's: a prune may have removed it while we waited."""
    try:
        linked = os.stat(folder / "lock", follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (linked.st_dev, linked.st_ino) == (held.st_dev, held.st_ino)


def tree_size(path: Path) -> int:
    """Bytes of the regular files under `path` (each inode once), walked without following symlinks."""
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [path]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


class CacheMountStore:
    def __init__(self, db: Database, root: Path) -> None:
        self._db = db
        self.folder = root / "cache-mounts"

    @contextmanager
    def use(
        self, cache_id: str, sharing: str, create: Callable[[Path], None], cancelled: Callable[[], bool] = _never
    ) -> Iterator[Path]:
        """Hold an instance of `cache_id` as `sharing` says, and yield its data folder. A new instance's folder is
        made by `create(path)`, which must create a directory at `path` (on the store's filesystem). Waiting for a
        step that holds it stops with CacheMountWaitCancelled once `cancelled()` is true."""
        if sharing not in SHARINGS:
            raise ValueError(f"unknown cache sharing {sharing!r}")
        if sharing == "private":
            fd, data = self._take_private(cache_id, create)
        else:
            fd, data = self._take_first(cache_id, sharing == "locked", create, cancelled)
        try:
            yield data
        finally:
            os.close(fd)  # releases the lock

    def _take_first(
        self, cache_id: str, exclusive: bool, create: Callable[[Path], None], cancelled: Callable[[], bool]
    ) -> tuple[int, Path]:
        while True:
            self._register(cache_id, 0)
            folder = self.folder / _folder_name(cache_id, 0)
            fd = _open_lock(folder)
            try:
                _lock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, cancelled)
                if not self._valid(fd, cache_id, 0, folder):
                    os.close(fd)
                    continue
                data = folder / "data"
                if not data.is_dir():
                    _make(folder, create, cancelled)
                self._touch(cache_id, 0)
            except BaseException:
                os.close(fd)
                raise
            return fd, data

    def _take_private(self, cache_id: str, create: Callable[[Path], None]) -> tuple[int, Path]:
        while True:
            for instance in self._instances(cache_id):
                taken = self._try_take(cache_id, instance, create)
                if taken is not None:
                    return taken
            taken = self._try_take(cache_id, self._new_instance(cache_id), create)
            if taken is not None:
                return taken

    def _try_take(self, cache_id: str, instance: int, create: Callable[[Path], None]) -> tuple[int, Path] | None:
        """The instance, locked exclusively, if no other step holds it."""
        folder = self.folder / _folder_name(cache_id, instance)
        fd = _open_lock(folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if not self._valid(fd, cache_id, instance, folder):
                os.close(fd)
                return None
            if not (folder / "data").is_dir():
                _make(folder, create, cancelled=_never)
            self._touch(cache_id, instance)
        except BaseException:
            os.close(fd)
            raise
        return fd, folder / "data"

    def _valid(self, fd: int, cache_id: str, instance: int, folder: Path) -> bool:
        if not _is_current(fd, folder):
            return False
        with self._db.read() as db:
            row = db.execute(
                "SELECT 1 FROM cache_mounts WHERE id = ? AND instance = ?", (cache_id, instance)
            ).fetchone()
        return row is not None

    def _register(self, cache_id: str, instance: int) -> None:
        now = time.time()
        with self._db.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO cache_mounts (id, instance, folder, created, last_used) VALUES (?, ?, ?, ?, ?)",
                (cache_id, instance, _folder_name(cache_id, instance), now, now),
            )

    def _new_instance(self, cache_id: str) -> int:
        now = time.time()
        with self._db.write() as db:
            row = db.execute("SELECT MAX(instance) FROM cache_mounts WHERE id = ?", (cache_id,)).fetchone()
            instance = 0 if row[0] is None else int(row[0]) + 1
            db.execute(
                "INSERT INTO cache_mounts (id, instance, folder, created, last_used) VALUES (?, ?, ?, ?, ?)",
                (cache_id, instance, _folder_name(cache_id, instance), now, now),
            )
        return instance

    def _instances(self, cache_id: str) -> list[int]:
        with self._db.read() as db:
            rows = db.execute("SELECT instance FROM cache_mounts WHERE id = ? ORDER BY instance", (cache_id,))
            return [int(row[0]) for row in rows.fetchall()]

    def _touch(self, cache_id: str, instance: int) -> None:
        with self._db.write() as db:
            db.execute(
                "UPDATE cache_mounts SET last_used = ? WHERE id = ? AND instance = ?", (time.time(), cache_id, instance)
            )

    @contextmanager
    def reading(self, cache_id: str) -> Iterator[Path | None]:
        """The data folder of the id's most recently used instance that has one, held shared while the caller reads
        it (no `locked` or `private` step writes it meanwhile, no prune removes it); None when there is none, or
        when each is held exclusively by a step right now."""
        for record in self.records():
            if record.id != cache_id:
                continue
            folder = self.folder / record.folder
            if not _is_dir(folder / "data"):
                continue
            try:
                fd = os.open(folder / "lock", os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                if not self._valid(fd, record.id, record.instance, folder):
                    continue
                yield folder / "data"
                return
            finally:
                os.close(fd)
        yield None

    def has_content(self, cache_id: str) -> bool:
        """Whether an instance of the id holds anything."""
        for record in self.records():
            data = self.folder / record.folder / "data"
            if record.id == cache_id and _is_dir(data):
                with os.scandir(data) as entries:
                    if next(entries, None) is not None:
                        return True
        return False

    def restore(self, cache_id: str, tree: Path, uid: int, gid: int, mode: int) -> bool:
        """Move `tree` (a folder of ours on the store's filesystem) into place as the data of the id's first instance,
        owned `uid`:`gid` with `mode`, unless that instance has content already or a step holds it. True when it did.
        """
        self._register(cache_id, 0)
        folder = self.folder / _folder_name(cache_id, 0)
        fd = _open_lock(folder)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if not self._valid(fd, cache_id, 0, folder):
                return False
            data = folder / "data"
            if _is_dir(data):
                with os.scandir(data) as entries:
                    if next(entries, None) is not None:
                        return False
                data.rmdir()
            os.chown(tree, uid, gid, follow_symlinks=False)
            os.chmod(tree, mode)
            os.rename(tree, data)
            self._touch(cache_id, 0)
            return True
        finally:
            os.close(fd)

    def records(self) -> list[CacheMountRecord]:
        """Every instance, most recently used first."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT id, instance, folder, created, last_used FROM cache_mounts ORDER BY last_used DESC"
            ).fetchall()
        return [CacheMountRecord(row[0], int(row[1]), row[2], float(row[3]), float(row[4])) for row in rows]

    def usage(self) -> list[CacheMountUsage]:
        """Every instance with its size and whether a step holds it, most recently used first."""
        usages = []
        for record in self.records():
            folder = self.folder / record.folder
            usages.append(CacheMountUsage(record, tree_size(folder / "data"), _held(folder)))
        return usages

    def remove(self, record: CacheMountRecord) -> bool:
        """Remove an instance unless a step holds it; True when it is gone."""
        folder = self.folder / record.folder
        try:
            fd = os.open(folder / "lock", os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            fd = -1
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
            with self._db.write() as db:
                db.execute("DELETE FROM cache_mounts WHERE id = ? AND instance = ?", (record.id, record.instance))
            shutil.rmtree(folder, ignore_errors=True)  # with the lock held, so no step starts on half of it
            return True
        finally:
            if fd >= 0:
                os.close(fd)


def _is_dir(path: Path) -> bool:
    """A directory itself, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _held(folder: Path) -> bool:
    try:
        fd = os.open(folder / "lock", os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _make(folder: Path, create: Callable[[Path], None], cancelled: Callable[[], bool]) -> None:
    """Make the data folder of a new instance through a temporary name, so that a crash never leaves half of one.
    Steps sharing the instance may get here at once: a lock of its own, held only while making it, lets one do it
    (the usage lock cannot: converting a shared flock to an exclusive one would wait for every other sharer)."""
    fd = os.open(folder / "create.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        _lock(fd, fcntl.LOCK_EX, cancelled)
        if (folder / "data").is_dir():
            return
        pending = folder / "data.new"
        if os.path.lexists(pending):
            shutil.rmtree(pending, ignore_errors=True)
        create(pending)
        os.rename(pending, folder / "data")
    finally:
        os.close(fd)
