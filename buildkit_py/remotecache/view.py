"""The build cache as a build sees it: the local store's records first, then the records of imported caches.

A lookup that misses locally falls back to the imported records (the keys are the same machine-independent blake3
keys). An imported record is a hit only when every layer of its chain is in the store or in the cache that holds the
record; its layers are fetched only when a step that runs reads them, or when they are the image's (`ensure_local`),
so a chain whose last step hits costs its own layers and none of the steps beneath it.

A layer that fails to fetch (a blob with the wrong digest, a truncated layout, a registry error) is remembered as
broken, with a warning naming it; the records that need it are misses from then on, and the builder solves again, so
those steps run as if the cache had never had them. Once a build is done, `adopt` records the imported hits whose
layers are now here as local records, with their original times, so the next build here hits locally; an export
carries the others forward (`blob_source`, `imported_result`).

Cache mounts an imported cache holds are restored by `restore_mount`, which the worker calls before a step that
mounts the id runs: once per id and build, never over an id with content here, and a failure is a warning.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from ..digest import Digest
from ..errors import BuildError, CacheImportError
from .metadata import CachedMount, CachedResult
from .sources import CacheSource

if TYPE_CHECKING:
    from ..image.manifest import Descriptor
    from ..store import Store

__all__ = ["CacheView", "human_size"]

Chain = tuple[Digest, ...]
_PARALLEL_FETCHES = 4  # downloads and unpacks wait on the network and the disk more than on the CPU


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class CacheView:
    """The local records, then each imported source's, in the order given. Implements the solver's BuildCache."""

    def __init__(
        self,
        store: Store,
        sources: Sequence[CacheSource] = (),
        *,
        warn: Callable[[str], None] = lambda text: None,
        say: Callable[[str], None] = lambda text: None,
        project: str = "",
    ) -> None:
        """`warn` and `say` take the lines a user should see; `project` names this build in the step log (imported
        step rows are filed under it)."""
        self.store = store
        self.sources = list(sources)
        self.warn = warn
        self.say = say
        self.broken: set[Digest] = set()
        self.failures: list[str] = []
        self.imported_hits: dict[Digest, tuple[CacheSource, CachedResult]] = {}
        self.fetched_layers = 0
        self.fetched_bytes = 0
        self.fetch_seconds = 0.0
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        self._mounts_done: set[str] = set()
        self._mount_locks: dict[str, threading.Lock] = {}
        for source in self.sources:
            rows = [replace(row, project=project) for row in source.document.steps]
            if rows:
                store.steps.add_missing(rows)

    # -- the solver's BuildCache ---------------------------------------------------------------------------------

    def get(self, key: Digest) -> Chain | None:
        chain = self.store.cache.get(key)
        return chain if chain is not None else self._imported(key)

    def get_many(self, keys: Sequence[Digest]) -> dict[Digest, Chain]:
        found = self.store.cache.get_many(keys)
        for key in keys:
            if key not in found and (chain := self._imported(key)) is not None:
                found[key] = chain
        return found

    def _imported(self, key: Digest) -> Chain | None:
        for source in self.sources:
            result = source.document.records.get(key)
            if result is not None and self._available(source, result.chain):
                with self._lock:
                    self.imported_hits[key] = (source, result)
                return result.chain
        return None

    def put(self, key: Digest, chain: Chain, description: str = "") -> None:
        self.store.cache.put(key, chain, description)

    def origin(self, key: Digest) -> str | None:
        """The imported cache a hit on `key` came from; None for a local record (or no hit)."""
        hit = self.imported_hits.get(key)
        return None if hit is None else hit[0].name

    def _available(self, source: CacheSource, chain: Chain) -> bool:
        for diff_id in chain:
            if diff_id in self.broken:
                return False
            if diff_id not in source.layers and not self.store.layers.has(diff_id):
                return False
        return True

    # -- layers ----------------------------------------------------------------------------------------------------

    def ensure_local(self, chain: Chain) -> None:
        """Fetch the layers of `chain` that the store lacks from the imported caches that hold them, several at
        once. CacheImportError when one cannot be fetched (it is then broken: no record that needs it is a hit
        again). Callers from several threads are served one at a time, so a layer is never fetched twice."""
        if not self.sources:
            return
        with self._fetching:
            wanted: list[tuple[CacheSource, Digest]] = []
            for diff_id in dict.fromkeys(chain):
                if self.store.layers.has(diff_id):
                    continue
                source = next((s for s in self.sources if diff_id in s.layers), None)
                if source is None or diff_id in self.broken:
                    raise CacheImportError(f"layer {diff_id} is in neither the store nor an imported cache")
                wanted.append((source, diff_id))
            if len(wanted) <= 1:
                for source, diff_id in wanted:
                    self._fetch(source, diff_id)
                return
            with ThreadPoolExecutor(max_workers=min(_PARALLEL_FETCHES, len(wanted))) as pool:
                futures = [pool.submit(self._fetch, source, diff_id) for source, diff_id in wanted]
            for future in futures:
                future.result()  # the first failure, once every fetch has ended

    def _fetch(self, source: CacheSource, diff_id: Digest) -> None:
        descriptor = source.layers[diff_id]
        started = time.monotonic()
        try:
            size = source.fetch(self.store, diff_id)
        except BuildError as error:
            message = f"cache {source.name}: layer {descriptor.digest} cannot be used, its steps will run: {error}"
            with self._lock:
                self.broken.add(diff_id)
                self.failures.append(message)
            self.warn(message)
            raise CacheImportError(message) from error
        elapsed = time.monotonic() - started
        with self._lock:
            self.fetched_layers += 1
            self.fetched_bytes += size
            self.fetch_seconds += elapsed
        self.say(
            f"importing cache layer {descriptor.digest.short} from {source.name}: {human_size(size)} {elapsed:.2f}s"
        )

    # -- after the build ---------------------------------------------------------------------------------------

    def adopt(self) -> int:
        """Record the imported hits whose layers are all here as local records (keeping their times); returns how
        many were recorded."""
        adopted = 0
        for key, (_, result) in list(self.imported_hits.items()):
            if all(self.store.layers.has(diff_id) for diff_id in result.chain):
                if self.store.cache.created([key]):
                    continue
                self.store.cache.put(key, result.chain, result.description, created=result.created)
                adopted += 1
        return adopted

    def blob_source(self, diff_id: Digest) -> tuple[CacheSource, Descriptor] | None:
        """The first imported cache that holds the layer's blob (none that failed to fetch), and its descriptor."""
        if diff_id in self.broken:
            return None
        for source in self.sources:
            descriptor = source.layers.get(diff_id)
            if descriptor is not None:
                return source, descriptor
        return None

    # -- cache mounts ----------------------------------------------------------------------------------------------

    def imported_mount(self, cache_id: str) -> tuple[CacheSource, CachedMount] | None:
        """The first imported cache holding the cache mount `cache_id` (none whose layer failed)."""
        for source in self.sources:
            mount = source.document.mount(cache_id)
            if mount is not None and mount.layer in source.layers and mount.layer not in self.broken:
                return source, mount
        return None

    def restore_mount(self, cache_id: str) -> None:
        """Give the store the cache mount `cache_id` from an imported cache, unless it has content for it already.
        Once per id and build; never raises (a failure is a warning)."""
        with self._lock:
            if cache_id in self._mounts_done:
                return
            lock = self._mount_locks.setdefault(cache_id, threading.Lock())
        with lock:
            if cache_id in self._mounts_done:
                return
            try:
                self._restore_mount(cache_id)
            finally:
                with self._lock:
                    self._mounts_done.add(cache_id)

    def _restore_mount(self, cache_id: str) -> None:
        from .mounts import restore_mount  # lazy: mounts imports this module (human_size)

        found = self.imported_mount(cache_id)
        if found is None:
            return
        source, mount = found
        if self.store.cache_mounts.has_content(cache_id):
            self.say(f"cache mount {cache_id}: the local one is kept ({source.name} has one too)")
            return
        started = time.monotonic()
        try:
            restored, size = restore_mount(self.store, source, mount)
        except (BuildError, OSError) as error:
            text = str(error) if isinstance(error, BuildError) else f"{error.strerror or error}"
            with self._lock:
                self.broken.add(mount.layer)
            self.warn(f"cache {source.name}: cache mount {cache_id} cannot be used, the step starts without it: {text}")
            return
        elapsed = time.monotonic() - started
        if restored:
            self.say(f"importing cache mount {cache_id} from {source.name}: {human_size(size)} {elapsed:.2f}s")
        else:
            self.say(f"cache mount {cache_id}: the local one is kept (a step holds it, or it has content now)")

    def mark_broken(self, diff_id: Digest, message: str) -> None:
        """A layer that turned out unusable after the build (an export could not carry it forward)."""
        with self._lock:
            self.broken.add(diff_id)
            self.failures.append(message)
        self.warn(message)

    def imported_result(self, key: Digest) -> CachedResult | None:
        """What an imported cache says `key` gave (for exporting records this store never fetched)."""
        for source in self.sources:
            result = source.document.records.get(key)
            if result is not None:
                return result
        return None

    def close(self) -> None:
        for source in self.sources:
            source.close()
