"""Cache mounts that travel (`--cache-to ...,cache-mounts=true`): the folders of the build's `RUN --mount=type=cache`
ids go into the exported cache as tar layers, and an import restores them before the first step that mounts them.

Export: the ids the build's steps mount. Each id's most recently used instance is held shared while it is packed
into a tar (mounttar.py), which is compressed as the cache's layers are and kept as a compressed form of the tar's
diff_id, so an unchanged folder is only read by the next export. An empty folder is not exported. An id this store
has nothing of, that an imported cache holds, is carried forward (its blob stays where that cache keeps it).

Import: an id with content here is kept. Otherwise the blob is fetched and checked against its digest, unpacked into
temp space with mounttar's rules and checked against its diff_id, and only then moved into the store's cache mounts
(store/cachemounts.py: `restore`). The caller turns a failure into a warning: the step then starts with the cache it
would have had without the import.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..digest import Digest, new_hasher
from ..errors import BuildError, CacheImportError, DigestMismatch
from ..image.compressed import layer_media_type
from ..image.manifest import Descriptor
from ..layer.compression import compress_stream
from ..solver.ops import CacheSpec, ExecOp
from ..store import CompressedForm
from .export import ExportBlob
from .metadata import CachedMount
from .mounttar import unpack_folder_tar, write_folder_tar
from .sources import CacheSource
from .view import human_size

if TYPE_CHECKING:
    from ..frontend.plan import BuildPlan
    from ..solver.solver import SolveResult
    from ..store import Store

__all__ = ["PackedMount", "mount_ids", "pack_mounts", "restore_mount"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class PackedMount:
    """A cache mount of this store, packed: its metadata and its layer blob in each compression asked for."""

    mount: CachedMount
    blobs: Mapping[str, ExportBlob]


def mount_ids(plan: BuildPlan, solved: SolveResult) -> list[str]:
    """The cache mount ids of the steps the build needed, sorted."""
    ids: set[str] = set()
    for digest in solved.keys:
        op = plan.graph.op(digest)
        if isinstance(op, ExecOp):
            ids.update(mount.id for mount in op.mounts if isinstance(mount, CacheSpec))
    return sorted(ids)


def pack_mounts(
    store: Store, ids: Iterable[str], compressions: Iterable[str], work: Path, say: Say
) -> dict[str, PackedMount]:
    """Each id's folder packed, with a blob in each of `compressions`, and a line of progress; an id with no
    folder, an empty one or one that cannot be read (a warning) is left out."""
    packed: dict[str, PackedMount] = {}
    for number, cache_id in enumerate(ids):
        started = time.monotonic()
        with store.cache_mounts.reading(cache_id) as data:
            if data is None:
                continue
            try:
                found = _pack(store, data, cache_id, sorted(set(compressions)), work / f"mount-{number}.tar")
            except (BuildError, OSError) as error:
                say(f"[Warning] cache mount {cache_id} is not exported: {error}")
                continue
        if found is not None:
            packed[cache_id] = found
            say(
                f"packing cache mount {cache_id}: {human_size(found.mount.size)} of files, "
                f"{time.monotonic() - started:.2f}s"
            )
    return packed


def _pack(store: Store, data: Path, cache_id: str, compressions: list[str], tar: Path) -> PackedMount | None:
    """Hash the folder's tar first: a compressed form of it the store kept from an earlier export is used as it is
    (a large cache that did not change is read, never compressed again). The tar is written only when a form is
    missing, and what it holds then is what is exported."""
    root = os.lstat(data)
    hashed = write_folder_tar(data, _NullFile())
    if hashed.entries == 0:
        return None
    blobs = {name: blob for name in compressions if (blob := _kept_form(store, hashed.diff_id, name)) is not None}
    if len(blobs) < len(compressions):
        with open(tar, "wb") as out:
            written = write_folder_tar(data, out)
        if written.diff_id != hashed.diff_id:  # a step changed it meanwhile
            hashed, blobs = written, {}
        for name in compressions:
            if name not in blobs:
                blobs[name] = _compressed(store, tar, written.diff_id, name)
    mount = CachedMount(
        cache_id, hashed.diff_id, root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode), hashed.content_size
    )
    return PackedMount(mount, blobs)


class _NullFile:
    def write(self, data: bytes | memoryview) -> int:
        return len(data)


def _kept_form(store: Store, diff_id: Digest, compression: str) -> ExportBlob | None:
    if compression == "uncompressed":
        return None
    form = store.forms.local(diff_id, compression)
    if form is None:
        return None
    descriptor = Descriptor(layer_media_type(compression), form.digest, form.size)
    return ExportBlob(diff_id, descriptor, file=store.blobs.path(form.digest))


class _HashingFile:
    def __init__(self, file: Any) -> None:
        self._file = file
        self._hasher: Any = new_hasher("sha256")
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hasher.update(data)
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    def digest(self) -> Digest:
        return Digest("sha256", self._hasher.hexdigest())


def _compressed(store: Store, tar: Path, diff_id: Digest, compression: str) -> ExportBlob:
    """The tar's blob in `compression`: the tar itself, or compressed into the store and remembered as a compressed
    form of `diff_id` (dropped by `cache prune`, as any form of a layer the store does not hold)."""
    media_type = layer_media_type(compression)
    if compression == "uncompressed":
        return ExportBlob(diff_id, Descriptor(media_type, diff_id, tar.stat().st_size), file=tar)
    file, temp = store.blobs.temp_file("compress")
    try:
        with file, open(tar, "rb") as source:
            hashing = _HashingFile(file)
            compress_stream(source, hashing, compression)  # type: ignore[arg-type]
            file.flush()
            os.fsync(file.fileno())
        digest = hashing.digest()
        path = store.blobs.place(temp, digest)
    finally:
        temp.unlink(missing_ok=True)
    store.forms.add(CompressedForm(diff_id, digest, hashing.size, compression, media_type))
    return ExportBlob(diff_id, Descriptor(media_type, digest, hashing.size), file=path)


def restore_mount(store: Store, source: CacheSource, mount: CachedMount) -> tuple[bool, int]:
    """Fetch, check and unpack the mount's layer from `source`, and put it in place of the id's instance unless that
    has content or is in use. Returns (whether it was put in place, bytes fetched). CacheImportError (or another
    BuildError) when the layer cannot be used."""
    descriptor = source.layers.get(mount.layer)
    if descriptor is None:
        raise CacheImportError(f"its layer {mount.layer} is not in the cache's manifest")
    with store.temp_dir("cache-mount-import") as work:
        blob, tree = work / "blob", work / "data"
        fetched = source.fetch_blob(store, descriptor, blob)
        tree.mkdir()
        with open(blob, "rb") as stream:
            unpacked = unpack_folder_tar(stream, tree)
        if unpacked.diff_id != mount.layer:
            raise DigestMismatch(f"layer {descriptor.digest} unpacks to {unpacked.diff_id}, not {mount.layer}")
        return store.cache_mounts.restore(mount.id, tree, mount.uid, mount.gid, mount.mode), fetched
