"""Compressed layer blobs, made once and remembered: a second save or push of a layer does not compress it again.

The store keeps layers uncompressed (named by diff_id). A compressed form is a blob of its own under
`<root>/blobs/sha256/`, recorded in the store's compressed forms (`store.forms`). A form whose blob went missing is a
miss; cache pruning (store/gc.py) drops the forms and blobs of layers the store deleted.

gzip and zstd output is deterministic (no name, mtime 0, fixed levels), so two processes compressing the same layer
at once produce the same blob and the second rename is harmless. Independent layers compress in parallel threads:
zlib and zstandard release the GIL while they work, so every core is used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..digest import Digest, new_hasher
from ..errors import LayerError
from ..layer.compression import COMPRESSIONS, compress_stream
from ..store import CompressedForm
from .manifest import DOCKER_LAYER, DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "CompressedBlob",
    "compressed_layer",
    "compressed_layers",
    "known_layers",
    "layer_media_type",
    "let_go_of_compressed",
]


@dataclass(frozen=True)
class CompressedBlob:
    """A layer as it travels: the blob's digest and size, and how it is compressed."""

    diff_id: Digest
    digest: Digest
    size: int
    algorithm: str


def layer_media_type(algorithm: str, oci: bool = True) -> str:
    if algorithm == "gzip":
        return OCI_LAYER_GZIP if oci else DOCKER_LAYER_GZIP
    if algorithm == "zstd":
        if not oci:
            raise LayerError("Docker v2 manifests have no zstd layer type; use an OCI manifest")
        return OCI_LAYER_ZSTD
    if algorithm == "uncompressed":
        return OCI_LAYER if oci else DOCKER_LAYER
    raise LayerError(f"unsupported layer compression {algorithm!r}; use one of {', '.join(COMPRESSIONS)}")


class _HashingFile:
    """A file that hashes what is written to it (the compressor's output)."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self._hasher: Any = new_hasher("sha256")
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hasher.update(data)
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    def digest(self) -> Digest:
        return Digest("sha256", self._hasher.hexdigest())


def _lookup(store: Store, diff_id: Digest, algorithm: str) -> CompressedBlob | None:
    form = store.forms.local(diff_id, algorithm)
    return None if form is None else CompressedBlob(diff_id, form.digest, form.size, algorithm)


def compressed_layer(store: Store, diff_id: Digest, algorithm: str) -> CompressedBlob:
    """The layer compressed with `algorithm` ("gzip", "zstd", "uncompressed"), as a blob in the store."""
    layer_media_type(algorithm)  # validates the name
    if algorithm == "uncompressed":
        return CompressedBlob(diff_id, diff_id, store.layers.size(diff_id), algorithm)
    cached = _lookup(store, diff_id, algorithm)
    if cached is not None:
        return cached
    file, temp = store.blobs.temp_file("compress")
    try:
        with file, store.layers.open(diff_id) as layer:
            writer = _HashingFile(file)
            compress_stream(layer, writer, algorithm)  # type: ignore[arg-type]
            file.flush()
            os.fsync(file.fileno())
        digest = writer.digest()
        store.blobs.place(temp, digest)
    finally:
        temp.unlink(missing_ok=True)
    store.forms.add(CompressedForm(diff_id, digest, writer.size, algorithm, layer_media_type(algorithm)))
    return CompressedBlob(diff_id, digest, writer.size, algorithm)


def compressed_layers(
    store: Store, diff_ids: Sequence[Digest], algorithm: str, jobs: int | None = None
) -> dict[Digest, CompressedBlob]:
    """Every distinct layer compressed (or found in the cache), several at once."""
    unique = list(dict.fromkeys(diff_ids))
    workers = max(1, min(len(unique), jobs or os.cpu_count() or 1))
    if workers == 1:
        return {diff_id: compressed_layer(store, diff_id, algorithm) for diff_id in unique}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compress") as pool:
        blobs = list(pool.map(lambda diff_id: compressed_layer(store, diff_id, algorithm), unique))
    return {blob.diff_id: blob for blob in blobs}


def _recorded(store: Store, diff_id: Digest, algorithm: str) -> CompressedBlob | None:
    """The form of the layer pybuild compressed with `algorithm` before, its bytes here or not: compressing the same
    layer again gives the same bytes."""
    forms = [form for form in store.forms.of(diff_id) if form.algorithm == algorithm]
    forms.sort(key=lambda form: not form.local)
    return CompressedBlob(diff_id, forms[0].digest, forms[0].size, algorithm) if forms else None


def known_layers(
    store: Store, diff_ids: Sequence[Digest], algorithm: str, jobs: int | None = None
) -> dict[Digest, CompressedBlob]:
    """Every distinct layer's digest and size compressed with `algorithm`, for a manifest: a form recorded before
    (whose bytes may have been let go after a push) or, for the others, compressed now and kept."""
    found: dict[Digest, CompressedBlob] = {}
    missing: list[Digest] = []
    for diff_id in dict.fromkeys(diff_ids):
        recorded = _recorded(store, diff_id, algorithm)
        if recorded is None:
            missing.append(diff_id)
        else:
            found[diff_id] = recorded
    found.update(compressed_layers(store, missing, algorithm, jobs))
    return found


def let_go_of_compressed(store: Store, diff_ids: Sequence[Digest], algorithm: str) -> None:
    """Delete the bytes of the `algorithm` forms pybuild made of these layers, keeping their records: the layer
    itself stays in the store and compresses again to the same digest when a save, push or export needs the bytes."""
    if algorithm == "uncompressed":  # its "form" is the layer's own tar, never to be deleted here
        return
    for diff_id in dict.fromkeys(diff_ids):
        if not store.layers.has(diff_id):
            continue
        for form in store.forms.of(diff_id):
            if form.algorithm == algorithm and form.local:
                store.blobs.delete(form.digest)
