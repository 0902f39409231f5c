"""`--cache-to`: the records of a build, with the blobs of their layers, written where another machine can read them.

    local     an OCI image layout folder: blobs first (content-addressed, each written under a temp name and renamed),
              then index.json replaced in one rename, then the blobs no index entry names any more removed. A killed
              export leaves the previous cache readable, and its temp files are removed by the next export, so
              the folder can be saved and restored by a CI system.
    registry  the same manifest pushed with pybuild's registry client: a manifest the registry has already under the
              tag is not pushed again, and each blob is looked for (HEAD) and cross-mounted before it is uploaded.
    inline    the metadata in the built image's own config (the builder does that: `inline_document`).

The cache manifest is an OCI image manifest whose config is a valid image config (see metadata.py), so registries
and `skopeo inspect` take it as any image. Layers of base images are left out: a build that can use the cache pulls
its base image anyway.

A record this store has only from an imported cache (a step beneath a hit, whose layers were never downloaded) is
carried forward with the blobs of that cache, so a chain of CI runners keeps the whole mode=max cache: the blob is
copied (verified) from the imported layout or registry into a local export, and cross-mounted into a registry
export on the same registry, else downloaded (verified) and uploaded. Cache mounts (`cache-mounts=true`) are layers
too, packed by the caller (mounts.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from ..digest import Digest
from ..errors import BuildError, CacheExportError, CarriedLayerError
from ..image.compressed import CompressedBlob, compressed_layer, known_layers, layer_media_type
from ..image.manifest import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    parse_index,
    parse_manifest,
)
from ..image.oci_layout import LAYOUT_FILE, LAYOUT_VERSION, REF_NAME
from ..reference import parse_reference
from .metadata import CacheDocument, CachedResult, cache_config_bytes
from .sources import CacheSource, copy_verified
from .spec import CacheExport

if TYPE_CHECKING:
    from ..registry.client import FileBody, RegistryClient, TransportOptions
    from ..store import Store

__all__ = [
    "CacheArtifact",
    "CarriedLayers",
    "ExportBlob",
    "ExportReport",
    "cache_artifact",
    "collect_records",
    "export_cache",
]


@dataclass(frozen=True)
class ExportReport:
    """What one --cache-to did: records and layers exported, the cache's blob bytes, and what went over the wire."""

    spec: CacheExport
    records: int = 0
    layers: int = 0
    carried: int = 0  # layers carried forward from an imported cache
    mounts: int = 0  # cache mounts exported
    size: int = 0  # bytes of the cache's blobs: layers, config and manifest
    sent: int = 0  # bytes uploaded or written
    unchanged: bool = False  # the destination had this very cache already
    seconds: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class ExportBlob:
    """One layer of the cache manifest, and where its bytes are: a file of ours (a compressed form in the store, a
    packed cache mount), the store's uncompressed layer (neither `file` nor `source`), or an imported cache that
    keeps it (`source`: carried forward, never downloaded here)."""

    diff_id: Digest
    descriptor: Descriptor
    file: Path | None = None
    source: CacheSource | None = None
    compression: str = ""  # a form of the store's layer: compressed again when `file` is gone


class CarriedLayers(Protocol):
    """What an export may carry forward from the build's imported caches (the CacheView)."""

    def blob_source(self, diff_id: Digest) -> tuple[CacheSource, Descriptor] | None: ...

    def imported_result(self, key: Digest) -> CachedResult | None: ...


@dataclass(frozen=True)
class CacheArtifact:
    """A cache ready to be written: its manifest, its config (the metadata) and its layer blobs."""

    document: CacheDocument
    blobs: tuple[ExportBlob, ...]
    config_bytes: bytes
    manifest_bytes: bytes

    @property
    def manifest_digest(self) -> Digest:
        return Digest("sha256", hashlib.sha256(self.manifest_bytes).hexdigest())

    @property
    def config_digest(self) -> Digest:
        return Digest("sha256", hashlib.sha256(self.config_bytes).hexdigest())

    @property
    def size(self) -> int:
        return sum(blob.descriptor.size for blob in self.blobs) + len(self.config_bytes) + len(self.manifest_bytes)

    @property
    def carried(self) -> int:
        return sum(1 for blob in self.blobs if blob.source is not None)


def collect_records(
    store: Store,
    keys: Iterable[Digest],
    chains: Mapping[Digest, tuple[Digest, ...]],
    descriptions: Mapping[Digest, str],
    carried: CarriedLayers | None = None,
) -> CacheDocument:
    """The records of `keys` (cache key -> chain, for the steps to export) whose layers are all in the store or,
    carried forward, in an imported cache that keeps them; and the step log rows of those keys."""
    wanted = [key for key in dict.fromkeys(keys) if key in chains]
    created = store.cache.created(wanted)
    records: dict[Digest, CachedResult] = {}
    for key in wanted:
        chain = chains[key]
        missing = [diff_id for diff_id in chain if not store.layers.has(diff_id)]
        if not missing:
            records[key] = CachedResult(chain, created.get(key, time.time()), descriptions.get(key, ""))
        elif carried is not None and all(carried.blob_source(diff_id) is not None for diff_id in missing):
            imported = carried.imported_result(key)
            first_built = created.get(key, imported.created if imported is not None else time.time())
            records[key] = CachedResult(chain, first_built, descriptions.get(key, ""))
    steps = tuple(store.steps.rows([str(key) for key in records]))
    return CacheDocument(records, steps)


def _stored_blob(store: Store, blob: CompressedBlob, compression: str) -> ExportBlob:
    descriptor = Descriptor(layer_media_type(compression), blob.digest, blob.size)
    if compression == "uncompressed":
        return ExportBlob(blob.diff_id, descriptor)
    file = store.blobs.path(blob.digest) if store.blobs.has(blob.digest) else None
    return ExportBlob(blob.diff_id, descriptor, file=file, compression=compression)


def cache_artifact(
    store: Store,
    document: CacheDocument,
    base_layers: set[Digest],
    compression: str,
    platform: Platform,
    carried: CarriedLayers | None = None,
    mount_blobs: Iterable[ExportBlob] = (),
) -> CacheArtifact:
    """The manifest, config and blobs of `document`: its records' layers (base image layers left out), then the
    layers of its cache mounts (`mount_blobs`, one per `document.mounts` entry)."""
    layers = [diff_id for diff_id in document.layers() if diff_id not in base_layers]
    local = known_layers(store, [diff_id for diff_id in layers if store.layers.has(diff_id)], compression)
    blobs: list[ExportBlob] = []
    for diff_id in layers:
        if diff_id in local:
            blobs.append(_stored_blob(store, local[diff_id], compression))
            continue
        found = carried.blob_source(diff_id) if carried is not None else None
        if found is None:
            raise CacheExportError(f"layer {diff_id} is neither in the store nor in an imported cache")
        source, descriptor = found
        blobs.append(ExportBlob(diff_id, descriptor, source=source))
    blobs.extend(mount_blobs)
    diff_ids = [blob.diff_id for blob in blobs]
    config_bytes = cache_config_bytes(document, diff_ids, platform)
    manifest = Manifest(
        config=Descriptor(OCI_CONFIG, Digest("sha256", hashlib.sha256(config_bytes).hexdigest()), len(config_bytes)),
        layers=tuple(blob.descriptor for blob in blobs),
        media_type=OCI_MANIFEST,
    )
    return CacheArtifact(document, tuple(blobs), config_bytes, manifest.to_bytes())


def export_cache(
    store: Store, spec: CacheExport, artifact: CacheArtifact, options: TransportOptions | None = None
) -> ExportReport:
    """Write the cache where `spec` says; a failure is in the report's `error`, never raised, except a layer
    carried forward that cannot be read where it is (CarriedLayerError: the caller drops its records)."""
    started = time.monotonic()
    try:
        if spec.type == "local":
            sent, unchanged = write_layout(store, Path(spec.dest), spec.tag, artifact)
        elif spec.type == "registry":
            sent, unchanged = push_cache(store, spec.dest, artifact, options)
        else:
            raise CacheExportError(f"cannot export cache of type {spec.type} here")
    except CarriedLayerError:
        raise
    except (BuildError, OSError) as error:
        text = str(error) if isinstance(error, BuildError) else f"{error.strerror or error}: {error.filename or ''}"
        return ExportReport(spec, seconds=time.monotonic() - started, error=text)
    return ExportReport(
        spec,
        records=len(artifact.document.records),
        layers=len(artifact.blobs) - len(artifact.document.mounts),
        carried=artifact.carried,
        mounts=len(artifact.document.mounts),
        size=artifact.size,
        sent=sent,
        unchanged=unchanged,
        seconds=time.monotonic() - started,
    )


# -- local: an OCI layout folder -------------------------------------------------------------------------------------


def _write_atomic(target: Path, content: bytes | BinaryIO) -> int:
    """Write under a temp name beside `target`, fsync, rename over it; returns the bytes written."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    written = 0
    try:
        with open(partial, "wb") as out:
            if isinstance(content, bytes):
                out.write(content)
                written = len(content)
            else:
                while chunk := content.read(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return written


def _open_local(store: Store, blob: ExportBlob) -> BinaryIO:
    """The blob's bytes (the caller checks them against its digest)."""
    if blob.file is not None:
        try:
            return open(blob.file, "rb")
        except FileNotFoundError:
            if not blob.compression:
                raise
    if blob.compression:  # let go of after a push, or by another process meanwhile: made again
        made = compressed_layer(store, blob.diff_id, blob.compression)
        return open(store.blobs.path(made.digest), "rb")
    return store.layers.open(blob.diff_id)


def _fetch_carried(store: Store, blob: ExportBlob, dest: Path) -> int:
    assert blob.source is not None
    try:
        return blob.source.fetch_blob(store, blob.descriptor, dest)
    except BuildError as error:
        raise CarriedLayerError(f"cache {blob.source.name}: {error}", blob.diff_id) from None


def _write_blob(store: Store, blob: ExportBlob, target: Path) -> int:
    """Write the blob under a temp name beside `target`, checked against its digest, and rename it into place."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    try:
        if blob.source is not None:
            size = _fetch_carried(store, blob, partial)
        else:
            with _open_local(store, blob) as stream, open(partial, "xb") as out:
                size = copy_verified(stream, out, blob.descriptor)
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return size


def _has_blob(path: Path, size: int) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def write_layout(store: Store, folder: Path, tag: str, artifact: CacheArtifact) -> tuple[int, bool]:
    """Returns (bytes written, whether the layout had this cache already)."""
    blobs_dir = folder / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_partials(folder)
    _remove_orphaned_partials(blobs_dir)
    index_path = folder / "index.json"
    previous = _read_index(index_path)
    entry = Descriptor(OCI_MANIFEST, artifact.manifest_digest, len(artifact.manifest_bytes), ((REF_NAME, tag),))
    if (
        previous is not None
        and entry in previous.manifests
        and _has_blob(blobs_dir / artifact.manifest_digest.hex, len(artifact.manifest_bytes))
    ):
        return 0, True
    written = 0
    for blob in artifact.blobs:
        target = blobs_dir / blob.descriptor.digest.hex
        if not _has_blob(target, blob.descriptor.size):
            written += _write_blob(store, blob, target)
    for data in (artifact.config_bytes, artifact.manifest_bytes):
        target = blobs_dir / hashlib.sha256(data).hexdigest()
        if not _has_blob(target, len(data)):
            written += _write_atomic(target, data)
    layout_file = folder / LAYOUT_FILE
    if not _has_blob(layout_file, len(LAYOUT_VERSION)):
        _write_atomic(layout_file, LAYOUT_VERSION)
    kept = [
        old
        for old in (previous.manifests if previous is not None else ())
        if dict(old.annotations).get(REF_NAME) != tag
    ]
    index = Index((*kept, entry))
    written += _write_atomic(index_path, index.to_bytes())
    _remove_unnamed_blobs(blobs_dir, index)
    return written, False


_PARTIAL = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.partial")


def _remove_orphaned_partials(folder: Path) -> None:
    """Temp files of earlier exports whose process is gone (killed half-way): nothing names them, and a CI system
    would otherwise save them with the cache, run after run. Those of a live export are its own to finish."""
    for path in folder.iterdir():
        found = _PARTIAL.fullmatch(path.name)
        if found is not None and not _process_exists(int(found["pid"])):
            path.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or no pid this machine has: leave the file alone
    return True


def _read_index(path: Path) -> Index | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        return parse_index(path.read_bytes())
    except (ValueError, OSError):
        return None


def _remove_unnamed_blobs(blobs_dir: Path, index: Index) -> None:
    """Blobs of caches the index no longer names (earlier exports): removed once the new index is in place."""
    named: set[str] = set()
    for entry in index.manifests:
        named.add(entry.digest.hex)
        try:
            manifest = parse_manifest((blobs_dir / entry.digest.hex).read_bytes())
        except (ValueError, OSError):
            return  # an entry we cannot read: remove nothing rather than something it needs
        named.add(manifest.config.digest.hex)
        named.update(layer.digest.hex for layer in manifest.layers)
    for path in blobs_dir.iterdir():
        if path.name not in named and len(path.name) == 64 and not path.name.startswith("."):
            path.unlink(missing_ok=True)


# -- registry --------------------------------------------------------------------------------------------------------


def push_cache(
    store: Store, name: str, artifact: CacheArtifact, options: TransportOptions | None = None
) -> tuple[int, bool]:
    """Returns (blob bytes uploaded, whether the registry had this very manifest under the tag already)."""
    # lazy: only a registry cache loads the registry client (httpx, ~130 modules)
    from ..registry.client import RegistryClient
    from ..registry.push import BlobPusher, put_manifest

    reference = parse_reference(name)
    with RegistryClient(reference.registry, options) as client, store.temp_dir("cache-push") as work:
        if _current_manifest(client, reference.repository, reference.tag or "latest") == artifact.manifest_digest:
            return 0, True
        pusher = BlobPusher(store, client, reference, lambda line: None, 32 << 20, 16 << 20)
        for number, blob in enumerate(artifact.blobs):
            location = blob.source.registry_location if blob.source is not None else None
            if location is not None and location[0] == client.registry:
                # A hint for the cross-repository mount: the registry checks it, a wrong one costs an upload.
                store.registry.add_source(blob.descriptor.digest, location[0], location[1])
            pusher.ensure(blob.descriptor.digest, blob.descriptor.size, _body(store, blob, work / f"blob-{number}"))
        config = artifact.config_bytes
        pusher.ensure(artifact.config_digest, len(config), lambda: config)
        put_manifest(client, reference, OCI_MANIFEST, artifact.manifest_bytes)
        return pusher.blob_bytes_sent + len(artifact.manifest_bytes), False


def _body(store: Store, blob: ExportBlob, spare: Path) -> Callable[[], FileBody]:
    """What to upload when the registry lacks the blob: a file of ours as it is, else the blob written (checked) to
    the spare path first."""
    from ..registry.client import FileBody  # lazy: see push_cache

    def body() -> FileBody:
        if blob.file is not None and blob.file.exists():
            return FileBody(blob.file, 0, blob.descriptor.size)
        if blob.source is not None:
            _fetch_carried(store, blob, spare)
        else:
            with _open_local(store, blob) as stream, open(spare, "xb") as out:
                copy_verified(stream, out, blob.descriptor)
        return FileBody(spare, 0, blob.descriptor.size)

    return body


def _current_manifest(client: RegistryClient, repository: str, tag: str) -> Digest | None:
    """The digest of the manifest the registry has under the tag (HEAD), or None."""
    from ..registry.auth import repository_scope  # lazy: see push_cache
    from ..registry.pull import MANIFEST_ACCEPT

    response = client.request(
        "HEAD",
        f"/v2/{repository}/manifests/{tag}",
        scope=repository_scope(repository, "pull", "push"),
        headers={"Accept": MANIFEST_ACCEPT},
        ok=(200, 404),
    )
    response.close()
    claimed = response.header("Docker-Content-Digest") if response.status == 200 else None
    try:
        return Digest.parse(claimed) if claimed else None
    except ValueError:
        return None
