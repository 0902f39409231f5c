"""Pull: manifest (or index, then the platform's manifest), config and layers from a registry into the store.

Everything downloaded is verified before it is used: a manifest against the digest it was asked by (or the
registry's Docker-Content-Digest), a blob against its descriptor's digest and size while it streams to a temp file,
and a layer's uncompressed tar against the config's diff_id. A layer is then unpacked with the hostile-safe unpacker
into a temp folder in the store, and only a layer that unpacked cleanly is committed; anything refused leaves
nothing behind. Layers the store has already (by diff_id) are not downloaded.
"""

from __future__ import annotations

import hashlib
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zstandard

from ..digest import CHUNK_SIZE, Digest
from ..errors import DigestMismatch, InvalidDigest, LayerError, RegistryError
from ..image.config import ImageConfig
from ..image.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    layer_compression,
    parse_manifest,
    parse_manifest_or_index,
)
from ..image.stored import put_image_bytes
from ..layer.compression import open_decompressed
from ..layer.tarsplit import commit_unpacked_layer
from ..layer.unpack import unpack_layer
from ..reference import Reference, parse_reference
from ..store import CompressedForm, Store
from ..transfer import Transfer, TransferCallback, ignore_transfer
from .auth import repository_scope
from .client import RegistryClient, TransportOptions

__all__ = [
    "MANIFEST_ACCEPT",
    "PullResult",
    "download_blob",
    "fetch_layer",
    "fetch_manifest",
    "pull_image",
    "resolve_manifest",
]

MANIFEST_ACCEPT = f"{OCI_INDEX}, {DOCKER_MANIFEST_LIST}, {OCI_MANIFEST}, {DOCKER_MANIFEST}"
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 8 << 20
DEFAULT_PLATFORM = Platform("linux", "amd64")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PullResult:
    reference: Reference
    image_id: Digest
    manifest_digest: Digest
    layers_downloaded: int
    layers_present: int
    bytes_downloaded: int


def _ignore(_: str) -> None:
    pass


def fetch_manifest(
    client: RegistryClient, repository: str, tag_or_digest: str, expected: Digest | None = None
) -> tuple[bytes, str | None, Digest]:
    """(body, declared media type, sha256 digest), verified against `expected` or the registry's own digest."""
    response = client.request(
        "GET",
        f"/v2/{repository}/manifests/{tag_or_digest}",
        scope=repository_scope(repository, "pull"),
        headers={"Accept": MANIFEST_ACCEPT},
    )
    with response:
        body = response.read_limited(MAX_MANIFEST_SIZE)
        media_type = (response.header("Content-Type") or "").split(";")[0].strip() or None
        claimed = response.header("Docker-Content-Digest")
    digest = Digest("sha256", hashlib.sha256(body).hexdigest())
    check = expected
    if check is None and claimed:
        try:
            check = Digest.parse(claimed)
        except InvalidDigest:
            raise RegistryError(f"{client.registry}/{repository}: invalid Docker-Content-Digest {claimed!r}") from None
    if check is not None and check.algorithm != "sha256":
        actual = Digest(check.algorithm, hashlib.new(check.algorithm, body).hexdigest())
        if actual != check:
            raise DigestMismatch(f"manifest {tag_or_digest} of {repository} does not match {check}")
    elif check is not None and check != digest:
        raise DigestMismatch(f"manifest {tag_or_digest} of {repository} hashes to {digest}, not {check}")
    if media_type in ("application/json", "text/plain"):
        media_type = None  # some registries serve OCI manifests without their media type
    return body, media_type, digest


def download_blob(
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    dest: Path,
    transfer: TransferCallback = ignore_transfer,
) -> int:
    """Stream a blob to `dest`, checking its size and digest; returns its size. `transfer` hears the bytes so far."""
    hasher = hashlib.new(descriptor.digest.algorithm)
    size = 0
    response = client.request(
        "GET",
        f"/v2/{repository}/blobs/{descriptor.digest}",
        scope=repository_scope(repository, "pull"),
        follow_redirects=True,
        transfer_size=descriptor.size,
    )
    item = descriptor.digest.short
    transfer(Transfer(item, "Downloading", 0, descriptor.size))
    with response, open(dest, "wb") as file:
        for chunk in response.iter_chunks():
            size += len(chunk)
            transfer(Transfer(item, "Downloading", min(size, descriptor.size), descriptor.size))
            if size > descriptor.size:
                raise DigestMismatch(
                    f"blob {descriptor.digest} is larger than its descriptor's {descriptor.size} bytes"
                )
            hasher.update(chunk)
            file.write(chunk)
    if size != descriptor.size:
        raise DigestMismatch(f"blob {descriptor.digest} is {size} bytes, its descriptor says {descriptor.size}")
    if hasher.hexdigest() != descriptor.digest.hex:
        raise DigestMismatch(
            f"blob {descriptor.digest} from {client.registry}/{repository} does not match its digest "
            f"(it hashes to {descriptor.digest.algorithm}:{hasher.hexdigest()})"
        )
    return size


def _decompress(blob: Path, tar: Path) -> tuple[Digest, int]:
    hasher = hashlib.sha256()
    size = 0
    try:
        with open(blob, "rb") as source, open(tar, "wb") as target:
            stream = open_decompressed(source)
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
                target.write(chunk)
                size += len(chunk)
    except (EOFError, OSError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as error:
        raise LayerError(f"layer {blob.name}: compression is corrupt or truncated: {error}") from error
    return Digest("sha256", hasher.hexdigest()), size


def fetch_layer(
    store: Store,
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    diff_id: Digest,
    transfer: TransferCallback = ignore_transfer,
) -> int:
    """Download one layer blob, check it against its digest and its uncompressed tar against `diff_id`, unpack it
    with the hostile-safe unpacker and commit it; returns the bytes downloaded. Nothing enters the store unless
    every check passed."""
    with store.temp_dir("pull") as work:
        blob, tar, root = work / "blob", work / "layer.tar", work / "root"
        downloaded = download_blob(client, repository, descriptor, blob, transfer)
        actual, size = _decompress(blob, tar)
        blob.unlink()
        if actual != diff_id:
            raise DigestMismatch(f"layer {descriptor.digest} uncompresses to {actual}, but the config says {diff_id}")
        root.mkdir()
        with open(tar, "rb") as stream:
            unpack_layer(stream, root)
        commit_unpacked_layer(store, tar, diff_id, size, root)
    # Only a blob we downloaded and checked is remembered as holding the layer (push trusts this mapping).
    store.forms.add(CompressedForm(diff_id, descriptor.digest, descriptor.size, "", descriptor.media_type))
    store.registry.add_source(descriptor.digest, client.registry, repository)
    return downloaded


def resolve_manifest(
    client: RegistryClient, reference: Reference, platform: Platform | None
) -> tuple[Manifest, Digest]:
    repository = reference.repository
    wanted = reference.digest or reference.tag or "latest"
    body, media_type, digest = fetch_manifest(client, repository, str(wanted), reference.digest)
    parsed = parse_manifest_or_index(body, media_type)
    if isinstance(parsed, Index):
        chosen = parsed.select(platform or DEFAULT_PLATFORM)
        if chosen is None:
            available = ", ".join(str(d.platform) for d in parsed.manifests if d.platform is not None)
            raise RegistryError(
                f"{reference}: no manifest for platform {platform or DEFAULT_PLATFORM} (available: {available or 'none'})"
            )
        body, media_type, digest = fetch_manifest(client, repository, str(chosen.digest), chosen.digest)
        return parse_manifest(body, media_type or chosen.media_type), digest
    return parsed, digest


def pull_image(
    store: Store,
    name: str,
    *,
    platform: Platform | None = None,
    options: TransportOptions | None = None,
    client: RegistryClient | None = None,
    progress: Progress = _ignore,
    transfer: TransferCallback = ignore_transfer,
) -> PullResult:
    """Pull `name` (`host:5000/app:tag`, `app@sha256:...`) into the store, tag it (a tag reference), return its id.
    `progress` hears Docker's lines ("Pull complete"), `transfer` the bytes of each layer as they arrive."""
    reference = parse_reference(name)
    owned = client is None
    client = client or RegistryClient(reference.registry, options)
    try:
        return _pull(store, client, reference, platform, progress, transfer)
    finally:
        if owned:
            client.close()


def _pull(
    store: Store,
    client: RegistryClient,
    reference: Reference,
    platform: Platform | None,
    progress: Progress,
    transfer: TransferCallback,
) -> PullResult:
    repository = reference.repository
    progress(f"{reference.tag or reference.digest}: Pulling from {reference.name}")
    manifest, manifest_digest = resolve_manifest(client, reference, platform)
    for layer in manifest.layers:
        layer_compression(layer.media_type)  # ManifestError for a layer type we cannot unpack
    downloaded_bytes = 0
    with store.temp_dir("pull") as work:
        config_path = work / "config.json"
        if manifest.config.size > MAX_CONFIG_SIZE:
            raise RegistryError(f"{reference}: image config of {manifest.config.size} bytes is too large")
        downloaded_bytes += download_blob(client, repository, manifest.config, config_path)
        config_bytes = config_path.read_bytes()
    try:
        config = ImageConfig.from_bytes(config_bytes)
    except (ValueError, TypeError, AttributeError, RegistryError) as error:
        raise RegistryError(f"{reference}: invalid image config: {error}") from None
    if len(config.diff_ids) != len(manifest.layers):
        raise RegistryError(
            f"{reference}: the manifest has {len(manifest.layers)} layers but the config names {len(config.diff_ids)}"
        )
    if platform is not None and not Platform(config.os, config.architecture, config.variant).matches(platform):
        raise RegistryError(f"{reference}: image is {config.os}/{config.architecture}, not {platform}")
    present = 0
    for descriptor, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
        if store.layers.has(diff_id):
            present += 1
            progress(f"{descriptor.digest.short}: Already exists")
            continue
        progress(f"{descriptor.digest.short}: Pulling fs layer ({descriptor.size} bytes)")
        downloaded_bytes += fetch_layer(store, client, repository, descriptor, diff_id, transfer)
        progress(f"{descriptor.digest.short}: Pull complete")
    store.registry.add_source(manifest.config.digest, client.registry, repository)
    image_id = put_image_bytes(store, config_bytes)  # byte for byte: the id is the config's digest
    store.registry.add_manifest(client.registry, repository, manifest_digest, image_id)
    if reference.tag is not None and reference.digest is None:
        store.tags.set(reference.familiar, image_id)
    progress(f"Digest: {manifest_digest}")
    return PullResult(
        reference=reference,
        image_id=image_id,
        manifest_digest=manifest_digest,
        layers_downloaded=len(manifest.layers) - present,
        layers_present=present,
        bytes_downloaded=downloaded_bytes,
    )
