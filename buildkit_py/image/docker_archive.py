"""`docker save` archives: what `docker load` reads.

    manifest.json              [{"Config": "<config hex>.json", "RepoTags": ["busybox:latest"], "Layers": [...]}]
    repositories               {"busybox": {"latest": "<top layer dir>"}}   (legacy, for old loaders)
    <config hex>.json          the image config, byte for byte (its sha256 is the image id)
    <layer dir>/VERSION        "1.0"                                        (legacy)
    <layer dir>/json           v1 layer metadata                            (legacy)
    <layer dir>/layer.tar      the uncompressed layer

Docker 20.10 names a layer dir by a v1 id derived from the chain; `docker load` only follows the paths in
manifest.json, so the dir here is the layer's chain id (unique per position, deterministic), and each is written
once. Layers stream from the store into the archive; nothing holds a whole layer in memory. Every entry has mtime 0,
so saving the same images twice gives the same bytes.

Loading reads what `docker save` writes (manifest.json; layers plain or compressed, also as links to
`blobs/sha256/...` as Docker 25 writes them), and the legacy form with only `repositories` and v1 layer dirs.
The image id is the sha256 of the config bytes, kept as they are; each layer must unpack to its config's diff_id.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO

from ..digest import Digest
from ..errors import StoreError
from ..layer.compression import open_decompressed
from ..reference import parse_reference
from ..store import normalize_tag
from ..transfer import TransferCallback, counted
from .config import DOCKER_EMPTY_CONTAINER_CONFIG, HistoryEntry, ImageConfig
from .ingest import ArchiveSource, IngestBatch, open_source, parse_config, read_small

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["chain_ids", "load_docker_archive", "load_docker_source", "save_docker_archive"]


def chain_ids(diff_ids: Sequence[Digest]) -> list[Digest]:
    """OCI ChainIDs: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    result: list[Digest] = []
    for diff_id in diff_ids:
        if not result:
            result.append(diff_id)
        else:
            text = f"{result[-1]} {diff_id}".encode()
            result.append(Digest("sha256", hashlib.sha256(text).hexdigest()))
    return result


@dataclass
class _SavedImage:
    image_id: Digest
    tags: list[str] = field(default_factory=list)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


def _add_dir(archive: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    archive.addfile(info)


def _collect(store: Store, names: Sequence[str]) -> list[_SavedImage]:
    """One entry per image in the order first named; a tag adds itself to RepoTags, an id adds no tag."""
    images: dict[Digest, _SavedImage] = {}
    for name in names:
        image_id, tag = store.lookup(name)
        saved = images.setdefault(image_id, _SavedImage(image_id))
        if tag is not None and tag not in saved.tags:
            saved.tags.append(tag)
    return list(images.values())


def save_docker_archive(
    store: Store, names: Sequence[str], out: BinaryIO, transfer: TransferCallback | None = None
) -> None:
    """Write the images `names` (tags or ids, resolved as `docker save` does) to `out` as one tar stream; `transfer`
    hears how much of each layer is written."""
    images = _collect(store, names)
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for saved in images:
            config_bytes = store.images.config_bytes(saved.image_id)
            config = json.loads(config_bytes)
            diff_ids = [Digest.parse(d) for d in (config.get("rootfs") or {}).get("diff_ids") or ()]
            config_name = f"{saved.image_id.hex}.json"
            layer_paths: list[str] = []
            parent = ""
            for position, (diff_id, chain_id) in enumerate(zip(diff_ids, chain_ids(diff_ids), strict=True)):
                layer_dir = chain_id.hex
                layer_paths.append(f"{layer_dir}/layer.tar")
                if layer_dir not in written:
                    written.add(layer_dir)
                    last = position == len(diff_ids) - 1
                    _add_layer(store, archive, layer_dir, diff_id, parent, config, last, transfer)
                parent = layer_dir
            if config_name not in written:
                written.add(config_name)
                _add_bytes(archive, config_name, config_bytes)
            manifest.append({"Config": config_name, "RepoTags": saved.tags or None, "Layers": layer_paths})
            for tag in saved.tags:
                reference = parse_reference(tag)
                if parent and reference.tag is not None:
                    repositories.setdefault(reference.name, {})[reference.tag] = parent
        _add_bytes(archive, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
        if repositories:
            _add_bytes(archive, "repositories", json.dumps(repositories, separators=(",", ":")).encode())


def _add_layer(
    store: Store,
    archive: tarfile.TarFile,
    layer_dir: str,
    diff_id: Digest,
    parent: str,
    config: dict[str, Any],
    last: bool,
    transfer: TransferCallback | None,
) -> None:
    v1: dict[str, Any] = {"id": layer_dir}
    if parent:
        v1["parent"] = parent
    v1["created"] = "1970-01-01T00:00:00Z"
    v1["container_config"] = DOCKER_EMPTY_CONTAINER_CONFIG
    if last:
        # Docker puts the image's own metadata on the top layer's v1 json.
        for key in ("created", "author", "architecture", "os", "variant", "config"):
            if config.get(key):
                v1[key] = config[key]
    _add_dir(archive, f"{layer_dir}/")
    _add_bytes(archive, f"{layer_dir}/VERSION", b"1.0")
    _add_bytes(archive, f"{layer_dir}/json", json.dumps(v1, separators=(",", ":")).encode())
    info = tarfile.TarInfo(f"{layer_dir}/layer.tar")
    info.size = store.layers.size(diff_id)
    info.mode = 0o644
    info.mtime = 0
    with store.layers.open(diff_id) as stream:
        archive.addfile(info, counted(stream, diff_id.short, "Writing", info.size, transfer))


# -- loading ---------------------------------------------------------------------------------------------------------


def _json(source: ArchiveSource, name: str) -> Any:
    try:
        return json.loads(read_small(source, name))
    except ValueError as error:
        raise StoreError(f"{name} in the archive is not JSON: {error}") from None


def _tags(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise StoreError(f"{where}: RepoTags is not a list of names")
    return [normalize_tag(tag) for tag in value]


def load_docker_source(store: Store, source: ArchiveSource, batch: IngestBatch) -> None:
    """Prepare every image of a docker archive into `batch` (committed by the caller)."""
    if not source.exists("manifest.json"):
        _load_legacy(source, batch)
        return
    entries = _json(source, "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise StoreError("manifest.json in the archive is not a list of images")
    for position, entry in enumerate(entries):
        where = f"manifest.json entry {position}"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise StoreError(f"{where} names no config")
        layers = entry.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(layer, str) for layer in layers):
            raise StoreError(f"{where}: Layers is not a list of paths")
        tags = _tags(entry.get("RepoTags"), where)
        config_bytes = read_small(source, entry["Config"])
        _, diff_ids = parse_config(config_bytes, entry["Config"])
        if len(diff_ids) != len(layers):
            raise StoreError(f"{where} lists {len(layers)} layers but its config {len(diff_ids)} diff_ids")
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            batch.add_layer(source, layer, diff_id)
        batch.add_image(config_bytes, tags)


def _load_legacy(source: ArchiveSource, batch: IngestBatch) -> None:
    """`repositories` and v1 layer dirs only: the top layer's json carries the image config, parents the chain."""
    if not source.exists("repositories"):
        raise StoreError("not a docker archive: no manifest.json and no repositories file")
    repositories = _json(source, "repositories")
    if not isinstance(repositories, dict):
        raise StoreError("repositories in the archive is not a JSON object")
    by_top: dict[str, list[str]] = {}
    for name, tags in repositories.items():
        if not isinstance(name, str) or not isinstance(tags, dict):
            raise StoreError("repositories in the archive is malformed")
        for tag, top in tags.items():
            if not isinstance(tag, str) or not isinstance(top, str):
                raise StoreError("repositories in the archive is malformed")
            by_top.setdefault(top, []).extend(_tags([f"{name}:{tag}"], "repositories"))
    for top, tags in by_top.items():
        chain: list[tuple[str, dict[str, Any]]] = []
        layer_id: str | None = top
        while layer_id:
            if len(chain) > 1000 or any(known == layer_id for known, _ in chain):
                raise StoreError("the v1 layer chain in the archive loops")
            v1 = _json(source, f"{layer_id}/json")
            if not isinstance(v1, dict):
                raise StoreError(f"{layer_id}/json in the archive is not a JSON object")
            chain.append((layer_id, v1))
            parent = v1.get("parent")
            layer_id = parent if isinstance(parent, str) else None
        chain.reverse()
        diff_ids: list[Digest] = []
        history: list[HistoryEntry] = []
        for layer_id, v1 in chain:
            diff_ids.append(_layer_digest(source, f"{layer_id}/layer.tar"))
            command = (v1.get("container_config") or {}).get("Cmd") or []
            history.append(HistoryEntry(created=str(v1.get("created") or ""), created_by=" ".join(map(str, command))))
        top_v1 = chain[-1][1]
        keys = ("architecture", "os", "variant", "created", "author", "config")
        config_json: dict[str, Any] = {key: top_v1[key] for key in keys if key in top_v1}
        config_json["rootfs"] = {"type": "layers", "diff_ids": [str(diff_id) for diff_id in diff_ids]}
        try:
            config = ImageConfig.from_json(config_json)
        except (ValueError, TypeError, AttributeError) as error:
            raise StoreError(f"{chain[-1][0]}/json in the archive is not a valid v1 image: {error}") from None
        config = replace(config, history=tuple(history))
        for (layer_id, _), diff_id in zip(chain, diff_ids, strict=True):
            batch.add_layer(source, f"{layer_id}/layer.tar", diff_id)
        batch.add_image(config.to_bytes(), tags)


def _layer_digest(source: ArchiveSource, name: str) -> Digest:
    """The diff_id of a layer file that may be compressed (a v1 archive records none)."""
    hasher = hashlib.sha256()
    with source.open(name) as raw:
        stream = open_decompressed(raw)
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
    return Digest("sha256", hasher.hexdigest())


def load_docker_archive(store: Store, stream: BinaryIO) -> list[str]:
    """Load a `docker save` archive; returns the tags loaded, and the id of each image loaded without one."""
    with open_source(store, stream) as source, store.temp_dir("load") as work:
        batch = IngestBatch(store, work)
        load_docker_source(store, source, batch)
        return batch.commit()
