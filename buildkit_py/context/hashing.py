"""Checksums of what a COPY selects from the build context, without re-reading unchanged files.

A stat cache in the store maps (inode, size, mtime_ns, ctime_ns) of a path to its content digest, so a no-op rebuild
of a large context reads only metadata. The checksum covers, per selected entry: path relative to the source, type,
mode, owner, size, content and link target — never mtime or atime, so a `touch` is still a hit.

The context is read through one `RootDir` per checksum: the walk's lstats, the link targets and the file contents all
come through descriptors beneath the root, never through a symlink (see `select`)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import blake3

from ..digest import Digest
from ..errors import ContextError
from ..fs.beneath import RootDir
from ..solver.ops import CopyAction
from .dockerignore import IgnoreRules
from .select import CopyFilter, source_error, walk_selected

if TYPE_CHECKING:
    from ..store import Store

_CHUNK = 8 << 20
_HASH_THREADS = 4
_SHORT = 16


@dataclass(frozen=True)
class Selection:
    """One COPY source's checksum, and each selected path's short digest (to say which file changed)."""

    digest: Digest
    files: Mapping[str, str] = field(default_factory=dict)


def hash_file(root: RootDir, relpath: str) -> str:
    """The blake3 of the regular file `relpath` beneath `root`."""
    try:
        fd = root.open_file(relpath)
        with open(fd, "rb", buffering=0) as stream:
            hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
    except OSError as error:
        raise source_error(relpath, error) from error
    return hasher.hexdigest()


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
        with root:
            return self._checksum_in(root, action)

    def _checksum_in(self, root: RootDir, action: CopyAction) -> Selection:
        rules = IgnoreRules(action.exclude) if action.exclude else None
        entries = list(
            walk_selected(
                root,
                action.src,
                allow_wildcard=action.allow_wildcard,
                follow_symlinks=action.follow_symlinks,
                exclude=rules,
                keep=CopyFilter.of(action.exclude_patterns, action.include_pattern),
                required=action.include_pattern if action.required else "",
            )
        )
        regular = [(relpath, info) for relpath, info in entries if stat.S_ISREG(info.st_mode)]
        contents = self._content_digests(root, regular)
        hasher = blake3.blake3()
        files: dict[str, str] = {}
        for relpath, info in entries:
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
            record = f"{relpath}\0{stat.S_IFMT(mode)}\0{stat.S_IMODE(mode)}\0{info.st_uid}\0{info.st_gid}\0{size}\0{payload}\n"
            encoded = record.encode("utf-8", "surrogateescape")
            hasher.update(encoded)
            files[relpath] = blake3.blake3(encoded).hexdigest()[:_SHORT]
        return Selection(Digest("blake3", hasher.hexdigest()), files)

    def _content_digests(self, root: RootDir, regular: list[tuple[str, os.stat_result]]) -> dict[str, str]:
        """Content digest by relpath. The stat cache is keyed by the file's path on this machine."""
        paths = {relpath: os.path.join(root.path, relpath) for relpath, _ in regular}
        known = self.store.stat_cache.get(list(paths.values())) if regular else {}
        digests: dict[str, str] = {}
        stale: list[tuple[str, os.stat_result]] = []
        for relpath, info in regular:
            row = known.get(paths[relpath])
            if row is not None and tuple(row[:4]) == _stat_row(info):
                digests[relpath] = row[4]
            else:
                stale.append((relpath, info))
        if stale:
            with ThreadPoolExecutor(max_workers=_HASH_THREADS) as pool:
                fresh = list(pool.map(lambda item: hash_file(root, item[0]), stale))
            rows = []
            for (relpath, info), content in zip(stale, fresh):
                digests[relpath] = content
                rows.append((paths[relpath], *_stat_row(info), content))
            self.store.stat_cache.put(rows)
        return digests
