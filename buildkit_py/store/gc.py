"""Build cache housekeeping: what the cache costs on disk, pruning it, and `docker system df`'s summary.

A cache record is what makes a build step a hit: it maps the step's cache key to the layer chain the step left.
Without it the step runs again, even when an image still holds those very layers. A record names a whole chain
(base layers first), so chains share prefixes: the record of step 3 names the layers of steps 1 and 2 too. A
record's own layers are the ones past its parent's chain (the longest chain of another record that is a proper
prefix of its own); its `size` is theirs, `private_size` the part of it no image uses. Layers an image uses belong to
the images: pruning never deletes them (the store checks every image inside the deleting transaction), so only
private bytes are reclaimable, and the totals count every layer once.

Sizes are bytes on disk (`layer_disk_sizes`): a layer's uncompressed tar, its unpacked snapshot when it has one
(its content size; the tar's size stands in until that is measured), and the compressed blobs made from it for push
or save, which go with it.

Cache mounts (`RUN --mount=type=cache`) are build cache too: listed, counted and pruned beside the records (least
recently used first), except an instance a running step holds, which is never removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..digest import Digest
from ..errors import StoreError
from .cache import CacheRecord
from .cachemounts import CacheMountRecord, CacheMountUsage
from .store import Store

__all__ = [
    "CacheTotals",
    "CacheUsage",
    "DiskUsage",
    "ImageUsage",
    "PruneReport",
    "UsageLine",
    "cache_mount_usage",
    "cache_totals",
    "cache_usage",
    "layer_disk_sizes",
    "prune_cache",
    "system_df",
]

# A layer nothing names yet may belong to a build still running (committed, its cache record not yet written).
ORPHAN_GRACE_SECONDS = 3600.0


@dataclass(frozen=True)
class CacheUsage:
    key: Digest
    description: str
    size: int  # bytes on disk of the layers this record added
    shared_size: int  # bytes of its whole chain that an image or another record keeps alive as well
    created: float
    last_used: float  # the latest use of this record or of any record built on top of it
    in_use_by_image: bool  # its chain is (a prefix of) a tagged image's chain: that image was built through it
    layers: tuple[Digest, ...] = ()  # the layers it added
    private_size: int = 0  # of `size`, the bytes of layers no image uses: what removing the cache could free


@dataclass(frozen=True)
class PruneReport:
    records_removed: int
    bytes_freed: int
    layers_removed: tuple[Digest, ...] = ()
    removed_keys: tuple[Digest, ...] = ()
    cache_mounts_removed: tuple[CacheMountRecord, ...] = ()


@dataclass(frozen=True)
class UsageLine:
    """One row of `system df`."""

    kind: str
    total: int
    active: int
    size: int
    reclaimable: int


@dataclass(frozen=True)
class ImageUsage:
    image_id: Digest
    tags: tuple[str, ...]
    created: str
    size: int
    shared_size: int  # bytes of its layers another image uses too
    unique_size: int  # bytes of its layers no other image uses


@dataclass(frozen=True)
class CacheTotals:
    """`buildx du`'s footer. Shared: cache layers an image uses too; private: the cache's alone (what `cache prune`
    can free: a record a tagged image was built through names only layers of that image)."""

    shared: int
    private: int
    reclaimable: int
    total: int


@dataclass(frozen=True)
class DiskUsage:
    images: UsageLine
    build_cache: UsageLine
    cache: tuple[CacheUsage, ...]
    image_details: tuple[ImageUsage, ...] = ()
    cache_mounts: tuple[CacheMountUsage, ...] = ()


def _is_prefix(prefix: tuple[Digest, ...], chain: tuple[Digest, ...]) -> bool:
    return len(prefix) <= len(chain) and chain[: len(prefix)] == prefix


def _parent_length(record: CacheRecord, records: Iterable[CacheRecord]) -> int:
    """How many of the record's layers its parent already has. Of two records with one chain the older one owns it."""
    best = 0
    for other in records:
        if other.key == record.key or not _is_prefix(other.chain, record.chain):
            continue
        older = (other.created, str(other.key)) < (record.created, str(record.key))
        if len(other.chain) == len(record.chain) and not older:
            continue
        best = max(best, len(other.chain))
    return best


def layer_disk_sizes(store: Store) -> dict[Digest, int]:
    """What each recorded layer costs on disk, as the module docstring says."""
    tars = store.layers.sizes()
    contents = store.layers.content_sizes()
    forms: dict[Digest, int] = {}
    for form in store.forms.all():
        if form.diff_id in tars and store.blobs.has(form.digest):
            forms[form.diff_id] = forms.get(form.diff_id, 0) + form.size
    sizes = {}
    for diff_id, tar in tars.items():
        content = contents.get(diff_id)
        snapshot = (tar if content is None else content) if store.snapshots.has(diff_id) else 0
        sizes[diff_id] = tar + snapshot + forms.get(diff_id, 0)
    return sizes


def _usage(store: Store) -> tuple[list[CacheUsage], dict[Digest, int], dict[Digest, tuple[Digest, ...]]]:
    records = store.cache.records()
    sizes = layer_disk_sizes(store)
    images = store.images.chains()
    image_layers = {diff_id for chain in images.values() for diff_id in chain}
    tagged = [
        images[summary.image_id] for summary in store.images.summaries() if summary.tags and summary.image_id in images
    ]
    holders: dict[Digest, int] = {}
    for record in records:
        for diff_id in set(record.chain):
            holders[diff_id] = holders.get(diff_id, 0) + 1
    usages = []
    for record in records:
        own = record.chain[_parent_length(record, records) :]
        latest = max(other.last_used for other in records if _is_prefix(record.chain, other.chain))
        shared = [d for d in set(record.chain) if d in image_layers or holders.get(d, 0) > 1]
        usages.append(
            CacheUsage(
                key=record.key,
                description=record.description,
                size=sum(sizes.get(d, 0) for d in set(own)),
                shared_size=sum(sizes.get(d, 0) for d in shared),
                created=record.created,
                last_used=latest,
                in_use_by_image=any(_is_prefix(record.chain, chain) for chain in tagged),
                layers=tuple(own),
                private_size=sum(sizes.get(d, 0) for d in set(own) if d not in image_layers),
            )
        )
    usages.sort(key=lambda usage: usage.last_used, reverse=True)
    return usages, sizes, images


def cache_usage(store: Store) -> list[CacheUsage]:
    """Every cache record with what it costs, most recently used first."""
    return _usage(store)[0]


def cache_mount_usage(store: Store) -> list[CacheMountUsage]:
    """Every cache mount instance with its size, most recently used first."""
    return store.cache_mounts.usage()


def cache_totals(store: Store) -> CacheTotals:
    shared, private = _layer_totals(store)
    mounts = cache_mount_usage(store)
    mount_bytes = sum(usage.size for usage in mounts)
    idle_bytes = sum(usage.size for usage in mounts if not usage.in_use)
    return CacheTotals(
        shared=shared,
        private=private + mount_bytes,
        reclaimable=private + idle_bytes,
        total=shared + private + mount_bytes,
    )


def _layer_totals(store: Store) -> tuple[int, int]:
    """Bytes of cache layers an image uses too, and of those only the cache keeps."""
    sizes = layer_disk_sizes(store)
    image_layers = {diff_id for chain in store.images.chains().values() for diff_id in chain}
    cache_layers = {diff_id for record in store.cache.records() for diff_id in record.chain}
    return _total(sizes, cache_layers & image_layers), _total(sizes, cache_layers - image_layers)


def _private_layers(records: Iterable[CacheRecord], image_layers: set[Digest]) -> dict[Digest, int]:
    """How many records name each layer that no image uses."""
    counts: dict[Digest, int] = {}
    for record in records:
        for diff_id in set(record.chain):
            if diff_id not in image_layers:
                counts[diff_id] = counts.get(diff_id, 0) + 1
    return counts


def prune_cache(
    store: Store,
    *,
    all: bool = False,
    keep_storage: int | None = None,
    until_seconds: float | None = None,
    now: float | None = None,
) -> PruneReport:
    """`docker builder prune`: without `all`, only records no tagged image was built through (dangling cache); `until_seconds` spares records
    used more recently than that; `keep_storage` removes the least recently used first, only until what the
    remaining records keep on disk is at most that many bytes. Layers an image uses are never deleted."""

    now = time.time() if now is None else now
    usages, sizes, images = _usage(store)
    records = {record.key: record for record in store.cache.records()}
    image_layers = {diff_id for chain in images.values() for diff_id in chain}
    candidates = [usage for usage in usages if usage.key in records and (all or not usage.in_use_by_image)]
    if until_seconds is not None:
        candidates = [usage for usage in candidates if usage.last_used < now - until_seconds]
    # Least recently used first; a record before the records built on it, whose removal is what frees its layers.
    candidates.sort(key=lambda usage: (usage.last_used, -len(records[usage.key].chain)))
    if keep_storage is not None:
        counts = _private_layers(records.values(), image_layers)
        kept = sum(sizes.get(diff_id, 0) for diff_id in counts)
        chosen = []
        for usage in candidates:
            if kept <= keep_storage:
                break
            chosen.append(usage)
            for diff_id in set(records[usage.key].chain):
                if diff_id in counts:
                    counts[diff_id] -= 1
                    if counts[diff_id] == 0:
                        kept -= sizes.get(diff_id, 0)
        candidates = chosen
    removed_keys: list[Digest] = []
    deleted: list[Digest] = []
    for usage in candidates:
        deleted += store.cache.delete(usage.key)
        removed_keys.append(usage.key)
    if all and until_seconds is None and keep_storage is None:
        deleted += store.layers.delete_unreferenced(now - ORPHAN_GRACE_SECONDS)
    freed = sum(sizes.get(diff_id, 0) for diff_id in deleted)
    mounts_removed, mount_bytes = _prune_cache_mounts(store, keep_storage, until_seconds, now)
    freed += mount_bytes
    prune_orphan_forms(store)
    if all:
        # The step log lets a later miss say "the record was pruned"; a full prune forgets that too.
        _forget_steps(store, removed_keys)
        if until_seconds is None and keep_storage is None:
            freed += _forget_downloads(store)
    _forget_vanished_files(store)
    return PruneReport(
        records_removed=len(removed_keys),
        bytes_freed=freed,
        layers_removed=tuple(deleted),
        removed_keys=tuple(removed_keys),
        cache_mounts_removed=tuple(mounts_removed),
    )


def _prune_cache_mounts(
    store: Store, keep_storage: int | None, until_seconds: float | None, now: float
) -> tuple[list[CacheMountRecord], int]:
    """Remove idle cache mounts, least recently used first: those unused for `until_seconds`, and only while the
    cache as a whole keeps more than `keep_storage` bytes. Returns what was removed and its bytes."""
    usages = sorted(cache_mount_usage(store), key=lambda usage: usage.record.last_used)
    if until_seconds is not None:
        usages = [usage for usage in usages if usage.record.last_used < now - until_seconds]
    kept = _layer_totals(store)[1] + sum(usage.size for usage in cache_mount_usage(store))
    removed: list[CacheMountRecord] = []
    freed = 0
    for usage in usages:
        if keep_storage is not None and kept <= keep_storage:
            break
        if usage.in_use or not store.cache_mounts.remove(usage.record):
            continue
        removed.append(usage.record)
        freed += usage.size
        kept -= usage.size
    return removed, freed


def prune_orphan_forms(store: Store) -> int:
    """Drop the compressed forms (and their blobs) of layers no longer in the store; returns how many were dropped."""
    dropped = 0
    for form in store.forms.all():
        if store.layers.has(form.diff_id):
            continue
        store.forms.remove(form.diff_id, form.digest)
        store.blobs.delete(form.digest)
        dropped += 1
    return dropped


def _forget_steps(store: Store, keys: list[Digest]) -> None:
    if keys:
        store.steps.forget([str(key) for key in keys])


def _forget_downloads(store: Store) -> int:
    """Drop what ADD downloaded (a rebuild downloads it again); returns the bytes freed. A blob that is also a layer,
    an image config or a compressed form stays."""
    downloads = store.downloads.all()
    if not downloads:
        return 0
    store.downloads.forget([download.url for download in downloads])
    kept = set(store.layers.sizes()) | set(store.images.chains()) | {form.digest for form in store.forms.all()}
    freed = 0
    for digest in {download.digest for download in downloads} - kept:
        try:
            freed += store.blobs.size(digest)
        except StoreError:
            continue
        store.blobs.delete(digest)
    return freed


def _forget_vanished_files(store: Store) -> None:
    """Drop the context stat cache rows of files that no longer exist; the others still save re-reading a file."""
    gone = [path for path in store.stat_cache.paths() if not os.path.lexists(path)]
    if gone:
        store.stat_cache.delete(gone)


def system_df(store: Store) -> DiskUsage:
    """`docker system df`. Images: an image is active when a tag names it; its reclaimable bytes are the layers only
    untagged images use (and no cache record). Build cache: active records are those a tagged image was built through;
    every byte of it is reclaimable (`cache prune --all`), since layers of images are never counted as cache."""
    usages, sizes, images = _usage(store)
    summaries = store.images.summaries()
    tagged = {summary.image_id for summary in summaries if summary.tags}
    image_layers = {diff_id for chain in images.values() for diff_id in chain}
    tagged_layers = {diff_id for image_id in tagged for diff_id in images.get(image_id, ())}
    cache_layers = {diff_id for record in store.cache.records() for diff_id in record.chain}
    images_line = UsageLine(
        kind="Images",
        total=len(images),
        active=len(tagged & set(images)),
        size=_total(sizes, image_layers),
        reclaimable=_total(sizes, image_layers - tagged_layers - cache_layers),
    )
    cache_size = _total(sizes, cache_layers - image_layers)
    mounts = cache_mount_usage(store)
    mount_bytes = sum(usage.size for usage in mounts)
    cache_line = UsageLine(
        kind="Build Cache",
        total=len(usages) + len(mounts),
        active=sum(1 for usage in usages if usage.in_use_by_image) + sum(1 for usage in mounts if usage.in_use),
        size=cache_size + mount_bytes,
        reclaimable=cache_size + sum(usage.size for usage in mounts if not usage.in_use),
    )
    users: dict[Digest, int] = {}
    for chain in images.values():
        for diff_id in set(chain):
            users[diff_id] = users.get(diff_id, 0) + 1
    details = []
    for summary in summaries:
        layers = set(images.get(summary.image_id, ()))
        shared = _total(sizes, {diff_id for diff_id in layers if users.get(diff_id, 0) > 1})
        unique = _total(sizes, layers) - shared
        details.append(ImageUsage(summary.image_id, summary.tags, summary.created, shared + unique, shared, unique))
    return DiskUsage(
        images=images_line,
        build_cache=cache_line,
        cache=tuple(usages),
        image_details=tuple(details),
        cache_mounts=tuple(mounts),
    )


def _total(sizes: Mapping[Digest, int], layers: set[Digest]) -> int:
    return sum(sizes.get(diff_id, 0) for diff_id in layers)
