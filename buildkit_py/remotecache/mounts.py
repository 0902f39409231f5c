"""Cache mounts that travel (`--cache-to ...,cache-mounts=true`): the folders of the build's `RUN --mount=type=cache`
ids go into the exported cache as tar layers, and an import restores them before the first step that mounts them.

Export: the ids the build's steps mount. Each id's most recently used instance is held shared while it is packed
into a tar (mounttar.py), which is compressed as the cache's layers are. An empty folder is not exported. An id this
store has nothing of, that an imported cache holds, is carried forward (its blob stays where that cache keeps it).

Import: an id with content here is kept. Otherwise the blob is fetched and checked against its digest, unpacked into
temp space with mounttar's rules and checked against its diff_id, and only then moved into the store's cache mounts
(store/cachemounts.py: `restore`). The caller turns a failure into a warning: the step then starts with the cache it
would have had without the import.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..digest import Digest, new_hasher
from ..errors import BuildError, CacheImportError, DigestMismatch
from ..image.compressed import layer_media_type
from ..image.manifest import Descriptor
from ..layer.compression import compress_stream
from .export import ExportBlob
from .metadata import CachedMount
from .mounttar import unpack_folder_tar, write_folder_tar
from .sources import CacheSource

if TYPE_CHECKING:
    from ..frontend.plan import BuildPlan
    from ..solver.solver import SolveResult
    from ..store import Store

__all__ = ["PackedMount", "mount_blob", "mount_ids", "pack_mounts", "restore_mount"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class PackedMount:
    """A cache mount of this store, packed: its metadata and its uncompressed tar in temp space."""

    mount: CachedMount
    tar: Path


def mount_ids(plan: BuildPlan, solved: SolveResult) -> list[str]:
    """The cache mount ids of the steps the build needed, sorted."""
    from ..solver.ops import CacheSpec, ExecOp

    ids: set[str] = set()
    for digest in solved.keys:
        op = plan.graph.op(digest)
        if isinstance(op, ExecOp):
            ids.update(mount.id for mount in op.mounts if isinstance(mount, CacheSpec))
    return sorted(ids)


def pack_mounts(store: Store, ids: Iterable[str], work: Path, warn: Say) -> dict[str, PackedMount]:
    """Each id's folder packed into `work`; an id with no folder, an empty one or one that cannot be read (a
    warning) is left out."""
    packed: dict[str, PackedMount] = {}
    for number, cache_id in enumerate(ids):
        tar = work / f"mount-{number}.tar"
        with store.cache_mounts.reading(cache_id) as data:
            if data is None:
                continue
            try:
                root = os.lstat(data)
                with open(tar, "wb") as out:
                    written = write_folder_tar(data, out)
            except (BuildError, OSError) as error:
                warn(f"cache mount {cache_id} is not exported: {error}")
                continue
        if written.entries == 0:
            continue
        mount = CachedMount(
            cache_id, written.diff_id, root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode), written.content_size
        )
        packed[cache_id] = PackedMount(mount, tar)
    return packed


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


def mount_blob(packed: PackedMount, compression: str) -> ExportBlob:
    """The packed mount's layer blob, compressed as `compression` says (once: kept beside the tar)."""
    media_type = layer_media_type(compression)
    if compression == "uncompressed":
        size = packed.tar.stat().st_size
        return ExportBlob(packed.mount.layer, Descriptor(media_type, packed.mount.layer, size), file=packed.tar)
    target = packed.tar.with_name(f"{packed.tar.name}.{compression}")
    with open(packed.tar, "rb") as source, open(target, "wb") as out:
        hashing = _HashingFile(out)
        compress_stream(source, hashing, compression)  # type: ignore[arg-type]
    return ExportBlob(packed.mount.layer, Descriptor(media_type, hashing.digest(), hashing.size), file=target)


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
