"""Imported caches, read lazily: opening one reads its manifest and config (the metadata) only; a layer's blob is
fetched when a build needs it, verified against its digest and its diff_id, unpacked beneath a temp folder with the
hostile-safe unpacker, and only then committed to the store. A blob can also be fetched as it is (`fetch_blob`,
verified against its digest): an export carries forward records whose layers this store never downloaded, and a
cache mount's layer is unpacked into the store's cache mounts, never into its layers.

    RegistryCache   a cache manifest, or an image with inline cache, in a registry (pybuild's registry client)
    LayoutCache     a cache written by `--cache-to type=local` (an OCI image layout folder)
    StoreImageCache an image in the local store with inline cache (loaded, or pulled before): its layers are here
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from ..digest import Digest
from ..errors import BuildError, CacheImportError, DigestMismatch, ImageNotFound, InvalidDigest
from ..image.ingest import IngestBatch, LayoutDir, read_small, verify_file
from ..image.manifest import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, Descriptor, Manifest, parse_index, parse_manifest
from ..image.oci_layout import LAYOUT_FILE, REF_NAME
from ..reference import parse_reference
from .metadata import CacheDocument, read_cache_config
from .spec import CacheImport

if TYPE_CHECKING:
    from ..registry.client import RegistryClient, TransportOptions
    from ..store import Store

__all__ = ["CacheSource", "LayoutCache", "RegistryCache", "StoreImageCache", "copy_verified", "open_cache_source"]

MAX_CACHE_CONFIG = 32 << 20
_CHUNK = 1 << 20


class CacheSource(Protocol):
    """Cache records from elsewhere, and the blobs of their layers."""

    @property
    def name(self) -> str: ...

    @property
    def document(self) -> CacheDocument: ...

    @property
    def layers(self) -> Mapping[Digest, Descriptor]:
        """The blob of each layer this source holds, by diff_id."""
        ...

    @property
    def metadata_size(self) -> int:
        """Bytes read to learn the records (manifest and config)."""
        ...

    def fetch(self, store: Store, diff_id: Digest) -> int:
        """Verify and commit the layer to the store; returns the bytes read. Called from several threads at once.
        CacheImportError (or another BuildError) when it cannot."""
        ...

    def fetch_blob(self, store: Store, descriptor: Descriptor, dest: Path) -> int:
        """Write the blob, as it is, to the new file `dest`, and check it against its digest and size; returns its
        size. CacheImportError (or another BuildError, whose text does not repeat the source's name) when it cannot;
        `dest` may then hold part of it."""
        ...

    @property
    def registry_location(self) -> tuple[str, str] | None:
        """(registry, repository) when the blobs are in a registry (a push there can mount them), else None."""
        ...

    def close(self) -> None:
        """Let go of connections; a later fetch opens them again."""
        ...


def copy_verified(stream: BinaryIO, out: BinaryIO, descriptor: Descriptor) -> int:
    """Copy the blob `descriptor` names from `stream` to `out`; DigestMismatch unless it has the descriptor's size
    and digest. Returns its size."""
    if descriptor.digest.algorithm not in ("sha256", "sha512"):
        raise DigestMismatch(f"blob {descriptor.digest}: unsupported digest algorithm")
    hasher = hashlib.new(descriptor.digest.algorithm)
    size = 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > descriptor.size:
            raise DigestMismatch(f"blob {descriptor.digest} is larger than its descriptor's {descriptor.size} bytes")
        hasher.update(chunk)
        out.write(chunk)
    if size != descriptor.size:
        raise DigestMismatch(f"blob {descriptor.digest} is {size} bytes, its descriptor says {descriptor.size}")
    if hasher.hexdigest() != descriptor.digest.hex:
        raise DigestMismatch(f"blob {descriptor.digest} hashes to {descriptor.digest.algorithm}:{hasher.hexdigest()}")
    return size


def _layer_map(manifest: Manifest, diff_ids: tuple[Digest, ...], where: str) -> dict[Digest, Descriptor]:
    if len(manifest.layers) != len(diff_ids):
        raise CacheImportError(
            f"{where}: the manifest lists {len(manifest.layers)} layers but its config names {len(diff_ids)}"
        )
    return dict(zip(diff_ids, manifest.layers, strict=True))


def _document(config_bytes: bytes, manifest: Manifest, where: str) -> tuple[CacheDocument, dict[Digest, Descriptor]]:
    document, diff_ids = read_cache_config(config_bytes, where)
    if document is None:
        raise CacheImportError(f"{where}: the image carries no pybuild cache metadata (built without --cache-to)")
    return document, _layer_map(manifest, diff_ids, where)


@dataclass
class _Loaded:
    document: CacheDocument
    layers: dict[Digest, Descriptor]
    metadata_size: int


class RegistryCache:
    def __init__(self, reference: str, options: TransportOptions | None = None) -> None:
        self.reference = parse_reference(reference)
        self.name = f"registry {reference}"
        self.registry_location = (self.reference.registry, self.reference.repository)
        self._options = options
        self._lock = threading.Lock()
        self._client_open: RegistryClient | None = None
        try:
            loaded = self._load()
        except BaseException:
            self.close()
            raise
        self.document, self.layers, self.metadata_size = loaded.document, loaded.layers, loaded.metadata_size

    @property
    def _client(self) -> RegistryClient:
        # lazy: only a registry cache loads the registry client (httpx, ~130 modules)
        from ..registry.client import RegistryClient

        with self._lock:
            if self._client_open is None:
                self._client_open = RegistryClient(self.reference.registry, self._options)
            return self._client_open

    def _load(self) -> _Loaded:
        from ..registry.client import NotFoundError  # lazy: see _client
        from ..registry.pull import download_blob, resolve_manifest

        try:
            manifest, _ = resolve_manifest(self._client, self.reference, None)
        except NotFoundError:
            raise CacheImportError(f"{self.name}: not found (a first build has no cache yet)") from None
        if manifest.config.size > MAX_CACHE_CONFIG:
            raise CacheImportError(f"{self.name}: a config of {manifest.config.size} bytes is too large")
        with tempfile.TemporaryDirectory(prefix="pybuild-cache-") as folder:
            path = Path(folder) / "config.json"
            size = download_blob(self._client, self.reference.repository, manifest.config, path)
            config_bytes = path.read_bytes()
        document, layers = _document(config_bytes, manifest, self.name)
        return _Loaded(document, layers, size + len(manifest.to_bytes()))

    def fetch(self, store: Store, diff_id: Digest) -> int:
        from ..registry.pull import fetch_layer  # lazy: see _client

        return fetch_layer(store, self._client, self.reference.repository, self.layers[diff_id], diff_id)

    def fetch_blob(self, store: Store, descriptor: Descriptor, dest: Path) -> int:
        from ..registry.pull import download_blob  # lazy: see _client

        try:
            return download_blob(self._client, self.reference.repository, descriptor, dest)
        except OSError as error:
            raise CacheImportError(f"blob {descriptor.digest}: {error.strerror or error}") from None

    def close(self) -> None:
        with self._lock:
            client, self._client_open = self._client_open, None
        if client is not None:
            client.close()


class LayoutCache:
    """`type=local,src=DIR`: the index entry named `tag` (or the only one) of an OCI layout."""

    def __init__(self, folder: Path, tag: str) -> None:
        self.name = f"local {folder}"
        self._source = LayoutDir(folder)
        if not self._source.exists(LAYOUT_FILE) or not self._source.exists("index.json"):
            raise CacheImportError(f"{self.name}: no cache there (no oci-layout and index.json)")
        try:
            index = parse_index(read_small(self._source, "index.json"))
        except ValueError as error:
            raise CacheImportError(f"{self.name}: index.json is not an OCI index: {error}") from None
        entries = [entry for entry in index.manifests if entry.media_type in MANIFEST_MEDIA_TYPES]
        named = [entry for entry in entries if dict(entry.annotations).get(REF_NAME) == tag]
        chosen = named[0] if named else entries[0] if len(entries) == 1 else None
        if chosen is None:
            raise CacheImportError(f"{self.name}: no cache tagged {tag!r} in index.json")
        if any(entry.media_type in INDEX_MEDIA_TYPES for entry in index.manifests) and not named:
            raise CacheImportError(f"{self.name}: nested indexes are not a pybuild cache")
        manifest_bytes = self._blob(chosen)
        try:
            manifest = parse_manifest(manifest_bytes)
        except ValueError as error:
            raise CacheImportError(f"{self.name}: manifest {chosen.digest}: {error}") from None
        if manifest.config.size > MAX_CACHE_CONFIG:
            raise CacheImportError(f"{self.name}: a config of {manifest.config.size} bytes is too large")
        config_bytes = self._blob(manifest.config)
        self.document, self.layers = _document(config_bytes, manifest, self.name)
        self.metadata_size = len(manifest_bytes) + len(config_bytes)

    def _blob(self, descriptor: Descriptor) -> bytes:
        name = f"blobs/{descriptor.digest.algorithm}/{descriptor.digest.hex}"
        try:
            verify_file(self._source, name, descriptor.digest, descriptor.size)
            return read_small(self._source, name, MAX_CACHE_CONFIG)
        except (BuildError, OSError) as error:
            raise CacheImportError(f"{self.name}: {error}") from None

    def fetch(self, store: Store, diff_id: Digest) -> int:
        descriptor = self.layers[diff_id]
        name = f"blobs/{descriptor.digest.algorithm}/{descriptor.digest.hex}"
        try:
            verify_file(self._source, name, descriptor.digest, descriptor.size)
            with store.temp_dir("cache-import") as work:
                batch = IngestBatch(store, work)
                batch.add_layer(self._source, name, diff_id)
                batch.commit()
        except (BuildError, OSError) as error:
            raise CacheImportError(f"{self.name}: layer {diff_id.short}: {error}") from None
        return descriptor.size

    def fetch_blob(self, store: Store, descriptor: Descriptor, dest: Path) -> int:
        name = f"blobs/{descriptor.digest.algorithm}/{descriptor.digest.hex}"
        try:
            with self._source.open(name) as stream, open(dest, "xb") as out:
                return copy_verified(stream, out, descriptor)
        except OSError as error:
            raise CacheImportError(f"blob {descriptor.digest}: {error.strerror or error}") from None

    @property
    def registry_location(self) -> tuple[str, str] | None:
        return None

    def close(self) -> None:
        pass


class StoreImageCache:
    """An image of the local store that carries inline cache: every layer it names is here already."""

    def __init__(self, store: Store, name: str) -> None:
        self.name = f"image {name}"
        image_id = store.resolve(name)
        config_bytes = store.images.config_bytes(image_id)
        document, diff_ids = read_cache_config(config_bytes, self.name)
        if document is None:
            raise CacheImportError(
                f"{self.name}: the image carries no pybuild cache metadata (built without --cache-to)"
            )
        self.document = document
        self.layers: dict[Digest, Descriptor] = {}
        self.metadata_size = len(config_bytes)
        del diff_ids

    def fetch(self, store: Store, diff_id: Digest) -> int:
        raise CacheImportError(f"{self.name}: layer {diff_id} is not in the store")

    def fetch_blob(self, store: Store, descriptor: Descriptor, dest: Path) -> int:
        raise CacheImportError(f"{self.name}: blob {descriptor.digest} is not in the store")

    @property
    def registry_location(self) -> tuple[str, str] | None:
        return None

    def close(self) -> None:
        pass


def open_cache_source(store: Store, spec: CacheImport, options: TransportOptions | None = None) -> CacheSource:
    """Read a cache's metadata. CacheImportError (or another BuildError) when it cannot be read."""
    if spec.type == "local":
        return LayoutCache(Path(spec.src), spec.tag)
    try:
        store.resolve(spec.src)
    except (ImageNotFound, InvalidDigest):
        return RegistryCache(spec.src, options)
    return StoreImageCache(store, spec.src)
