"""OCI image layouts: saved as a tar stream or into a folder, and loaded from either.

    oci-layout                 {"imageLayoutVersion": "1.0.0"}
    index.json                 one manifest descriptor per tag (an untagged image gets one without a name)
    blobs/sha256/<hex>         manifests, configs (byte for byte: the image id) and compressed layers

Each index entry is annotated as BuildKit's OCI exporter and Docker do: `org.opencontainers.image.ref.name` holds
the tag (`latest`) and `io.containerd.image.name` the full name (`docker.io/library/busybox:latest`). Loading takes a
name from `io.containerd.image.name`, else from a ref.name that is a whole reference (`busybox:1`, not only `1`).

Loading trusts nothing: every blob is checked against its descriptor's digest and size, an index nested in the
index is resolved to linux/amd64 (or the platform asked for), and layers are unpacked in temp space first.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..digest import Digest
from ..errors import StoreError
from ..reference import InvalidReference, parse_reference
from ..transfer import TransferCallback, counted
from .compressed import CompressedBlob, compressed_layers, layer_media_type
from .ingest import ArchiveSource, IngestBatch, open_source, parse_config, read_small, verify_file
from .manifest import (
    DOCKER_CONFIG,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    ManifestError,
    Platform,
    layer_compression,
    parse_index,
    parse_manifest,
)
from .stored import image_config

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "CONTAINERD_NAME",
    "REF_NAME",
    "load_oci_layout",
    "load_oci_source",
    "save_oci_archive",
    "save_oci_layout",
]

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
DEFAULT_PLATFORM = Platform("linux", "amd64")


@dataclass(frozen=True)
class _Blob:
    digest: Digest
    size: int
    data: bytes | None = None  # small blobs in memory; None: a blob in the store


@dataclass
class _Plan:
    blobs: dict[Digest, _Blob]
    index: Index


def _plan(store: Store, names: Sequence[str], compression: str) -> _Plan:
    """What a layout of these images holds: blobs by digest and the index."""
    images: dict[Digest, list[str]] = {}
    for name in names:
        image_id, tag = store.lookup(name)
        tags = images.setdefault(image_id, [])
        if tag is not None and tag not in tags:
            tags.append(tag)
    configs = {image_id: image_config(store, image_id) for image_id in images}
    every_layer = [diff_id for config in configs.values() for diff_id in config.diff_ids]
    layers: dict[Digest, CompressedBlob] = compressed_layers(store, every_layer, compression)
    blobs: dict[Digest, _Blob] = {}
    entries: list[Descriptor] = []
    media_type = layer_media_type(compression)
    for image_id, tags in images.items():
        config = configs[image_id]
        config_bytes = store.images.config_bytes(image_id)
        blobs[image_id] = _Blob(image_id, len(config_bytes), config_bytes)
        layer_descriptors = []
        for diff_id in config.diff_ids:
            blob = layers[diff_id]
            blobs[blob.digest] = _Blob(blob.digest, blob.size)
            layer_descriptors.append(Descriptor(media_type, blob.digest, blob.size))
        manifest = Manifest(
            config=Descriptor(OCI_CONFIG, image_id, len(config_bytes)), layers=tuple(layer_descriptors)
        ).to_bytes()
        manifest_digest = Digest("sha256", _sha256(manifest))
        blobs[manifest_digest] = _Blob(manifest_digest, len(manifest), manifest)
        platform = Platform(config.os, config.architecture, config.variant)
        tag_list: list[str | None] = list(tags) or [None]
        for tag in tag_list:
            annotations: tuple[tuple[str, str], ...] = ()
            if tag is not None:
                reference = parse_reference(tag)
                annotations = ((CONTAINERD_NAME, reference.canonical), (REF_NAME, reference.tag or "latest"))
            entries.append(Descriptor(OCI_MANIFEST, manifest_digest, len(manifest), annotations, platform))
    return _Plan(blobs, Index(tuple(entries)))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar_info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o755 if directory else 0o644
    info.mtime = 0
    if directory:
        info.type = tarfile.DIRTYPE
    return info


def save_oci_archive(
    store: Store,
    names: Sequence[str],
    out: BinaryIO,
    compression: str = "gzip",
    transfer: TransferCallback | None = None,
) -> None:
    """Write the images `names` (tags or ids) to `out` as an OCI image layout in one tar stream; `transfer` hears how
    much of each layer blob is written."""
    plan = _plan(store, names, compression)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_tar_info(LAYOUT_FILE, len(LAYOUT_VERSION)), io.BytesIO(LAYOUT_VERSION))
        archive.addfile(_tar_info("blobs/", directory=True))
        archive.addfile(_tar_info("blobs/sha256/", directory=True))
        for blob in plan.blobs.values():
            info = _tar_info(f"blobs/sha256/{blob.digest.hex}", blob.size)
            if blob.data is not None:
                archive.addfile(info, io.BytesIO(blob.data))
            else:
                with store.blobs.open(blob.digest) as stream:
                    archive.addfile(info, counted(stream, blob.digest.short, "Writing", blob.size, transfer))
        index = plan.index.to_bytes()
        archive.addfile(_tar_info("index.json", len(index)), io.BytesIO(index))


def save_oci_layout(
    store: Store,
    names: Sequence[str],
    directory: Path,
    compression: str = "gzip",
    transfer: TransferCallback | None = None,
) -> None:
    """Write the images into the OCI layout folder `directory` (created when missing). Blobs already there stay;
    index.json keeps the entries of other names and is replaced last, in one rename. `transfer` hears how much of
    each layer blob is written."""
    plan = _plan(store, names, compression)
    directory.mkdir(parents=True, exist_ok=True)
    blobs_dir = directory / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / LAYOUT_FILE, LAYOUT_VERSION)
    for blob in plan.blobs.values():
        target = blobs_dir / blob.digest.hex
        if target.is_file() and not target.is_symlink() and target.stat().st_size == blob.size:
            continue
        if blob.data is not None:
            _write_atomic(target, blob.data)
        else:
            with store.blobs.open(blob.digest) as stream:
                _write_atomic(target, counted(stream, blob.digest.short, "Writing", blob.size, transfer))
    entries = list(plan.index.manifests)
    new_names = {dict(entry.annotations).get(REF_NAME) for entry in entries} - {None}
    existing = directory / "index.json"
    if existing.is_file() and not existing.is_symlink():
        try:
            previous = parse_index(existing.read_bytes())
        except ManifestError:
            previous = Index(())
        kept = [entry for entry in previous.manifests if dict(entry.annotations).get(REF_NAME) not in new_names]
        entries = kept + entries
    _write_atomic(existing, Index(tuple(entries)).to_bytes())


def _write_atomic(target: Path, content: bytes | BinaryIO) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as out:
            if isinstance(content, bytes):
                out.write(content)
            else:
                while chunk := content.read(1 << 20):
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


# -- loading ---------------------------------------------------------------------------------------------------------


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _read_blob(source: ArchiveSource, descriptor: Descriptor) -> bytes:
    name = _blob_name(descriptor.digest)
    verify_file(source, name, descriptor.digest, descriptor.size)
    return read_small(source, name)


def _names(descriptor: Descriptor) -> list[str]:
    annotations = dict(descriptor.annotations)
    for key in (CONTAINERD_NAME, REF_NAME):
        text = annotations.get(key)
        if not text or (key == REF_NAME and ":" not in text and "/" not in text):
            continue  # a ref.name of a tag alone names no repository
        try:
            reference = parse_reference(text)
        except InvalidReference:
            continue
        if reference.digest is None:
            return [reference.familiar]
    return []


def _resolve_manifest(source: ArchiveSource, descriptor: Descriptor, platform: Platform | None) -> Descriptor | None:
    """Follow nested indexes down to the image manifest for the platform; None when there is none for it."""
    for _ in range(4):
        if descriptor.media_type in MANIFEST_MEDIA_TYPES:
            if platform is not None and descriptor.platform is not None and not descriptor.platform.matches(platform):
                return None
            return descriptor
        if descriptor.media_type not in INDEX_MEDIA_TYPES:
            raise ManifestError(
                f"index entry {descriptor.digest} has an unsupported media type {descriptor.media_type}"
            )
        nested = parse_index(_read_blob(source, descriptor))
        candidates = [
            entry for entry in nested.manifests if entry.media_type in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES
        ]
        chosen = nested.select(platform or DEFAULT_PLATFORM)
        if chosen is None:
            unplatformed = [entry for entry in candidates if entry.platform is None]
            if len(unplatformed) != 1:
                return None
            chosen = unplatformed[0]
        descriptor = chosen
    raise ManifestError("indexes nested too deeply")


def load_oci_source(store: Store, source: ArchiveSource, batch: IngestBatch, platform: Platform | None = None) -> None:
    """Prepare every image of an OCI layout into `batch` (committed by the caller)."""
    if not source.exists(LAYOUT_FILE):
        raise StoreError("not an OCI image layout: no oci-layout file")
    try:
        layout = json.loads(read_small(source, LAYOUT_FILE, 4096))
    except ValueError:
        raise StoreError("oci-layout is not JSON") from None
    if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith("1."):
        raise StoreError(f"unsupported OCI layout version: {layout!r}")
    index = parse_index(read_small(source, "index.json"))
    loaded: dict[Digest, list[str]] = {}
    order: list[Digest] = []
    manifests: dict[Digest, Manifest] = {}
    for entry in index.manifests:
        descriptor = _resolve_manifest(source, entry, platform)
        if descriptor is None:
            continue
        if descriptor.digest not in manifests:
            manifests[descriptor.digest] = parse_manifest(_read_blob(source, descriptor))
            order.append(descriptor.digest)
        tags = loaded.setdefault(descriptor.digest, [])
        tags.extend(name for name in _names(entry) if name not in tags)
    if not order:
        wanted = platform or DEFAULT_PLATFORM
        raise StoreError(f"the OCI layout holds no image for {wanted}")
    for manifest_digest in order:
        _prepare_image(source, batch, manifests[manifest_digest], loaded[manifest_digest])


def _prepare_image(source: ArchiveSource, batch: IngestBatch, manifest: Manifest, tags: list[str]) -> None:
    if manifest.config.media_type not in (OCI_CONFIG, DOCKER_CONFIG):
        raise ManifestError(f"not an image: the config's media type is {manifest.config.media_type}")
    config_bytes = _read_blob(source, manifest.config)
    _, diff_ids = parse_config(config_bytes, f"config {manifest.config.digest}")
    if len(diff_ids) != len(manifest.layers):
        raise ManifestError(f"manifest lists {len(manifest.layers)} layers but its config {len(diff_ids)} diff_ids")
    for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
        if layer.urls:
            raise ManifestError(f"layer {layer.digest} is a foreign layer, not in the archive")
        layer_compression(layer.media_type)  # a known layer media type, else ManifestError
        name = _blob_name(layer.digest)
        verify_file(source, name, layer.digest, layer.size)
        batch.add_layer(source, name, diff_id)
    batch.add_image(config_bytes, tags)


def load_oci_layout(store: Store, source: Path | BinaryIO, platform: Platform | None = None) -> list[str]:
    """Load an OCI layout (a folder, a tar file or a tar stream); returns the tags loaded, and the id of each image
    loaded without a name."""
    with open_source(store, source) as files, store.temp_dir("load") as work:
        batch = IngestBatch(store, work)
        load_oci_source(store, files, batch, platform)
        return batch.commit()
