"""Checksums of what a COPY selects from the build context, without re-reading unchanged files.

A stat cache in the store maps (inode, size, mtime_ns, ctime_ns) of a path to its content digest, so a no-op rebuild
of a large context reads only metadata. The checksum covers, per selected entry: path relative to the source, type,
mode, owner, size, content and link target — never mtime or atime, so a `touch` is still a hit.

The context is read through one `RootDir` per checksum: the walk's lstats, the link targets and the file contents all
come through descriptors beneath the root, never through a symlink (see `select`); files are opened folder by
folder (`FolderFiles`).

The selection streams: entries are checksummed a batch at a time (stat cache rows looked up, missing files hashed by a
few threads, each taking a run of files), so memory does not grow with the size of the context beyond the per-file
short digests that explain a later miss."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import blake3

from ..digest import Digest
from ..errors import ContextError
from ..fs.beneath import FolderFiles, RootDir
from ..solver.ops import CopyAction
from .dockerignore import IgnoreRules
from .select import CopyFilter, source_error, walk_selected

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["ContextHasher", "Selection", "hash_file"]

_CHUNK = 8 << 20
_HASH_THREADS = 4
_SHORT = 16
_BATCH = 4096  # entries looked up in the stat cache, and their missing files hashed, together
_RUN_FILES = 256  # files one hashing task takes in turn
_RUN_BYTES = 32 << 20  # ... or fewer, when they are this large together
_BIG = 4 << 20  # a file this large is hashed by blake3's own threads
_FLUSH_ROWS = 16384  # new stat cache rows written together

_Entry = tuple[str, os.stat_result]


@dataclass(frozen=True)
class Selection:
    """One COPY source's checksum, and each selected path's short digest (to say which file changed)."""

    digest: Digest
    files: Mapping[str, str] = field(default_factory=dict)


def _digest_stream(fd: int, size_hint: int) -> str:
    """The blake3 of what is left to read from `fd` (read to its end, whatever `size_hint` said)."""
    if size_hint < _BIG:
        hasher = blake3.blake3(os.read(fd, size_hint + 1))
        while data := os.read(fd, _CHUNK):
            hasher.update(data)
        return hasher.hexdigest()
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while count := os.readv(fd, [buffer]):
        hasher.update(view[:count])
    return hasher.hexdigest()


def hash_file(root: RootDir, relpath: str) -> str:
    """The blake3 of the regular file `relpath` beneath `root`."""
    try:
        fd = root.open_file(relpath)
        try:
            return _digest_stream(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    except OSError as error:
        raise source_error(relpath, error) from error


def _hash_run(root: RootDir, run: list[tuple[str, int]]) -> list[str]:
    digests: list[str] = []
    with FolderFiles(root) as files:
        for relpath, size in run:
            try:
                fd = files.open_file(relpath)
                try:
                    digests.append(_digest_stream(fd, size))
                finally:
                    os.close(fd)
            except OSError as error:
                raise source_error(relpath, error) from error
    return digests


def _runs(files: list[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    """`files` cut into runs of neighbours (so a run mostly stays in one folder), none too long or too large."""
    run: list[tuple[str, int]] = []
    run_bytes = 0
    for relpath, size in files:
        run.append((relpath, size))
        run_bytes += size
        if len(run) >= _RUN_FILES or run_bytes >= _RUN_BYTES:
            yield run
            run, run_bytes = [], 0
    if run:
        yield run


def _batches(entries: Iterable[_Entry]) -> Iterator[list[_Entry]]:
    iterator = iter(entries)
    while batch := list(islice(iterator, _BATCH)):
        yield batch


def _stat_row(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class ContextHasher:
    def __init__(self, context: Path, store: Store) -> None:
        self.context = context
        self.store = store
        self._results: dict[tuple[object, ...], Selection] = {}
        self._lock = threading.Lock()

    def checksum(self, action: CopyAction) -> Selection:
        request = (
            action.src,
            action.allow_wildcard,
            action.follow_symlinks,
            action.exclude,
            action.exclude_patterns,
            action.include_pattern,
            action.required,
        )
        with self._lock:
            cached = self._results.get(request)
        if cached is not None:
            return cached
        selection = self._checksum(action)
        with self._lock:
            self._results[request] = selection
        return selection

    def _checksum(self, action: CopyAction) -> Selection:
        try:
            root = RootDir(self.context)
        except OSError as error:
            raise ContextError(f"cannot read the build context {self.context}: {error.strerror}") from error
        with root, ThreadPoolExecutor(max_workers=_HASH_THREADS) as pool:
            return self._checksum_in(root, action, pool)

    def _checksum_in(self, root: RootDir, action: CopyAction, pool: ThreadPoolExecutor) -> Selection:
        rules = IgnoreRules(action.exclude) if action.exclude else None
        entries = walk_selected(
            root,
            action.src,
            allow_wildcard=action.allow_wildcard,
            follow_symlinks=action.follow_symlinks,
            exclude=rules,
            keep=CopyFilter.of(action.exclude_patterns, action.include_pattern),
            required=action.include_pattern if action.required else "",
        )
        hasher = blake3.blake3()
        files: dict[str, str] = {}
        new_rows: list[tuple[str, int, int, int, int, str]] = []
        for batch in _batches(entries):
            contents = self._content_digests(root, batch, pool, new_rows)
            for relpath, info in batch:
                mode = info.st_mode
                if stat.S_ISREG(mode):
                    payload = contents[relpath]
                elif stat.S_ISLNK(mode):
                    try:
                        payload = root.readlink(relpath)
                    except OSError as error:
                        raise source_error(relpath, error) from error
                else:
                    payload = ""
                size = info.st_size if stat.S_ISREG(mode) else 0
                record = (
                    f"{relpath}\0{stat.S_IFMT(mode)}\0{stat.S_IMODE(mode)}\0{info.st_uid}\0{info.st_gid}\0{size}\0"
                    f"{payload}\n"
                )
                encoded = record.encode("utf-8", "surrogateescape")
                hasher.update(encoded)
                files[relpath] = blake3.blake3(encoded).hexdigest()[:_SHORT]
            if len(new_rows) >= _FLUSH_ROWS:
                self.store.stat_cache.put(new_rows)
                new_rows.clear()
        if new_rows:
            self.store.stat_cache.put(new_rows)
        return Selection(Digest("blake3", hasher.hexdigest()), files)

    def _content_digests(
        self,
        root: RootDir,
        batch: list[_Entry],
        pool: ThreadPoolExecutor,
        new_rows: list[tuple[str, int, int, int, int, str]],
    ) -> dict[str, str]:
        """Content digest by relpath of the batch's regular files; the rows of those that had to be read are added
        to `new_rows`. The stat cache is keyed by the file's path on this machine."""
        prefix = root.path.rstrip("/") + "/"
        regular = [(relpath, info) for relpath, info in batch if stat.S_ISREG(info.st_mode)]
        if not regular:
            return {}
        known = self.store.stat_cache.get([prefix + relpath for relpath, _ in regular])
        digests: dict[str, str] = {}
        stale: list[_Entry] = []
        for relpath, info in regular:
            row = known.get(prefix + relpath)
            if row is not None and tuple(row[:4]) == _stat_row(info):
                digests[relpath] = row[4]
            else:
                stale.append((relpath, info))
        if not stale:
            return digests
        runs = list(_runs([(relpath, info.st_size) for relpath, info in stale]))
        if len(runs) == 1:
            fresh = _hash_run(root, runs[0])
        else:
            fresh = [digest for done in pool.map(lambda run: _hash_run(root, run), runs) for digest in done]
        for (relpath, info), content in zip(stale, fresh, strict=True):
            digests[relpath] = content
            new_rows.append((prefix + relpath, *_stat_row(info), content))
        return digests
