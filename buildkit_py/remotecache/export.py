"""`--cache-to`: the records of a build, with the blobs of their layers, written where another machine can read them.

    local     an OCI image layout folder: blobs first (content-addressed, each written under a temp name and renamed),
              then index.json replaced in one rename, then the blobs no index entry names any more removed. A killed
              export leaves the previous cache readable, and the folder can be saved and restored by a CI system.
    registry  the same manifest pushed with pybuild's registry client: a manifest the registry has already under the
              tag is not pushed again, and each blob is looked for (HEAD) and cross-mounted before it is uploaded.
    inline    the metadata in the built image's own config (the builder does that: `inline_document`).

The cache manifest is an OCI image manifest whose config is a valid image config (see metadata.py), so registries
and `skopeo inspect` take it as any image. Layers of base images are left out: a build that can use the cache pulls
its base image anyway.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..digest import Digest
from ..errors import BuildError, CacheExportError
from ..image.compressed import CompressedBlob, compressed_layers, layer_media_type
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
from .metadata import CacheDocument, CachedResult, cache_config_bytes
from .spec import CacheExport

if TYPE_CHECKING:
    from ..registry.client import FileBody, RegistryClient, TransportOptions
    from ..store import Store

__all__ = ["CacheArtifact", "ExportReport", "cache_artifact", "collect_records", "export_cache"]


@dataclass(frozen=True)
class ExportReport:
    """What one --cache-to did: records and layers exported, the cache's blob bytes, and what went over the wire."""

    spec: CacheExport
    records: int = 0
    layers: int = 0
    size: int = 0  # bytes of the cache's blobs: layers, config and manifest
    sent: int = 0  # bytes uploaded or written
    unchanged: bool = False  # the destination had this very cache already
    seconds: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class CacheArtifact:
    """A cache ready to be written: its manifest, its config (the metadata) and its layer blobs."""

    document: CacheDocument
    blobs: tuple[CompressedBlob, ...]
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
        return sum(blob.size for blob in self.blobs) + len(self.config_bytes) + len(self.manifest_bytes)


def collect_records(
    store: Store,
    keys: Iterable[Digest],
    chains: Mapping[Digest, tuple[Digest, ...]],
    descriptions: Mapping[Digest, str],
) -> CacheDocument:
    """The records of `keys` (cache key -> chain, for the steps to export) whose layers are all in the store, and the
    step log rows of those keys."""
    wanted = [key for key in dict.fromkeys(keys) if key in chains]
    created = store.cache.created(wanted)
    records: dict[Digest, CachedResult] = {}
    for key in wanted:
        chain = chains[key]
        if all(store.layers.has(diff_id) for diff_id in chain):
            records[key] = CachedResult(chain, created.get(key, time.time()), descriptions.get(key, ""))
    steps = tuple(store.steps.rows([str(key) for key in records]))
    return CacheDocument(records, steps)


def cache_artifact(
    store: Store, document: CacheDocument, base_layers: set[Digest], compression: str, platform: Platform
) -> CacheArtifact:
    layers = [diff_id for diff_id in document.layers() if diff_id not in base_layers]
    blobs = compressed_layers(store, layers, compression)
    ordered = tuple(blobs[diff_id] for diff_id in layers)
    config_bytes = cache_config_bytes(document, layers, platform)
    media_type = layer_media_type(compression)
    manifest = Manifest(
        config=Descriptor(OCI_CONFIG, Digest("sha256", hashlib.sha256(config_bytes).hexdigest()), len(config_bytes)),
        layers=tuple(Descriptor(media_type, blob.digest, blob.size) for blob in ordered),
        media_type=OCI_MANIFEST,
    )
    return CacheArtifact(document, ordered, config_bytes, manifest.to_bytes())


def export_cache(
    store: Store, spec: CacheExport, artifact: CacheArtifact, options: TransportOptions | None = None
) -> ExportReport:
    """Write the cache where `spec` says; a failure is in the report's `error`, never raised."""
    started = time.monotonic()
    try:
        if spec.type == "local":
            sent, unchanged = write_layout(store, Path(spec.dest), spec.tag, artifact)
        elif spec.type == "registry":
            sent, unchanged = push_cache(store, spec.dest, artifact, options)
        else:
            raise CacheExportError(f"cannot export cache of type {spec.type} here")
    except (BuildError, OSError) as error:
        text = str(error) if isinstance(error, BuildError) else f"{error.strerror or error}: {error.filename or ''}"
        return ExportReport(spec, seconds=time.monotonic() - started, error=text)
    return ExportReport(
        spec,
        records=len(artifact.document.records),
        layers=len(artifact.blobs),
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
        target = blobs_dir / blob.digest.hex
        if not _has_blob(target, blob.size):
            with store.blobs.open(blob.digest) as stream:
                written += _write_atomic(target, stream)
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
    from ..reference import parse_reference
    from ..registry.client import FileBody, RegistryClient
    from ..registry.push import BlobPusher, put_manifest

    reference = parse_reference(name)
    with RegistryClient(reference.registry, options) as client:
        if _current_manifest(client, reference.repository, reference.tag or "latest") == artifact.manifest_digest:
            return 0, True
        pusher = BlobPusher(store, client, reference, lambda line: None, 32 << 20, 16 << 20)
        for blob in artifact.blobs:
            pusher.ensure(blob.digest, blob.size, _body(FileBody(store.blobs.path(blob.digest), 0, blob.size)))
        config = artifact.config_bytes
        pusher.ensure(artifact.config_digest, len(config), lambda: config)
        put_manifest(client, reference, OCI_MANIFEST, artifact.manifest_bytes)
        return pusher.blob_bytes_sent + len(artifact.manifest_bytes), False


def _body(body: FileBody) -> Callable[[], FileBody]:
    return lambda: body


def _current_manifest(client: RegistryClient, repository: str, tag: str) -> Digest | None:
    """The digest of the manifest the registry has under the tag (HEAD), or None."""
    from ..registry.auth import repository_scope
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
