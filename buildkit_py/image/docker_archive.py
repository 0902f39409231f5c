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
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from ..digest import Digest

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["chain_ids", "save_docker_archive"]

_V1_EMPTY_CONTAINER_CONFIG: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


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


def save_docker_archive(store: Store, names: Sequence[str], out: BinaryIO) -> None:
    """Write the images `names` (tags or ids, resolved as `docker save` does) to `out` as one tar stream."""
    from .reference import parse_reference

    images = _collect(store, names)
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for saved in images:
            config_bytes = store.image_config_bytes(saved.image_id)
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
                    _add_layer(store, archive, layer_dir, diff_id, parent, config, last=position == len(diff_ids) - 1)
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
) -> None:
    v1: dict[str, Any] = {"id": layer_dir}
    if parent:
        v1["parent"] = parent
    v1["created"] = "1970-01-01T00:00:00Z"
    v1["container_config"] = _V1_EMPTY_CONTAINER_CONFIG
    if last:
        # Docker puts the image's own metadata on the top layer's v1 json.
        for key in ("created", "author", "architecture", "os", "variant", "config"):
            if config.get(key):
                v1[key] = config[key]
    _add_dir(archive, f"{layer_dir}/")
    _add_bytes(archive, f"{layer_dir}/VERSION", b"1.0")
    _add_bytes(archive, f"{layer_dir}/json", json.dumps(v1, separators=(",", ":")).encode())
    info = tarfile.TarInfo(f"{layer_dir}/layer.tar")
    info.size = store.layer_size(diff_id)
    info.mode = 0o644
    info.mtime = 0
    with store.open_layer(diff_id) as stream:
        archive.addfile(info, stream)
