"""Test helpers for images in and out: layers made from tar entries, a small busybox image, store inventories."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from buildkit_py.digest import Digest
from buildkit_py.image.config import ContainerConfig, HistoryEntry, ImageConfig
from buildkit_py.image.stored import put_image
from buildkit_py.store import Store

BUSYBOX = Path("/bin/busybox")
CREATED = "2024-01-01T00:00:00Z"


def info(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "", uid: int = 0, gid: int = 0
) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.mode = mode
    entry.linkname = link
    entry.uid, entry.gid = uid, gid
    entry.mtime = 1_700_000_000
    return entry


Item = tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]


def tar_bytes(items: Sequence[Item]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for item in items:
            if isinstance(item, tarfile.TarInfo):
                archive.addfile(item)
            else:
                entry, data = item
                entry.size = len(data)
                archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def sha256(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def commit_layer(store: Store, data: bytes) -> Digest:
    diff_id = sha256(data)
    with store.temp_path("layer") as path:
        path.write_bytes(data)
        store.layers.commit(path, diff_id, len(data))
    return diff_id


def busybox_layers() -> list[bytes]:
    """Two layers: busybox with a hard link, a file and a dir; then a whiteout, an opaque dir and a new file."""
    busybox = BUSYBOX.read_bytes()
    base = tar_bytes(
        [
            info("bin/", tarfile.DIRTYPE, 0o755),
            (info("bin/busybox", mode=0o755), busybox),
            info("bin/sh", tarfile.SYMTYPE, 0o777, link="busybox"),
            info("bin/ls", tarfile.LNKTYPE, 0o755, link="bin/busybox"),
            info("etc/", tarfile.DIRTYPE, 0o755),
            (info("etc/hello"), b"hello\n"),
            info("opt/", tarfile.DIRTYPE, 0o755),
            (info("opt/old"), b"old\n"),
            (info("usr/bin/suid", mode=0o4755), b"#!/bin/sh\n"),
        ]
    )
    top = tar_bytes(
        [
            info("etc/", tarfile.DIRTYPE, 0o755),
            (info("etc/.wh.hello"), b""),
            (info("etc/new"), b"new\n"),
            info("opt/", tarfile.DIRTYPE, 0o700),
            (info("opt/.wh..wh..opq"), b""),
            (info("opt/fresh"), b"fresh\n"),
        ]
    )
    return [base, top]


def make_image(store: Store, tag: str | None = "pybuild-test/archive:1", layers: list[bytes] | None = None) -> Digest:
    diff_ids = tuple(commit_layer(store, data) for data in (layers if layers is not None else busybox_layers()))
    config = ImageConfig(
        config=ContainerConfig(cmd=("/bin/sh",), env=("PATH=/bin",)),
        diff_ids=diff_ids,
        history=tuple(HistoryEntry(CREATED, f"layer {n}") for n in range(len(diff_ids))),
        created=CREATED,
    )
    image_id = put_image(store, config)
    if tag:
        store.tags.set(tag, image_id)
    return image_id


@dataclass(frozen=True)
class Inventory:
    """What a store holds: for checking that a refused load wrote nothing."""

    tags: tuple[tuple[str, str], ...]
    images: tuple[str, ...]
    layers: tuple[str, ...]
    snapshots: tuple[str, ...]
    blobs: tuple[str, ...]


def inventory(store: Store) -> Inventory:
    with store.db.read() as db:
        tags = tuple(db.execute("SELECT name, image_id FROM tags ORDER BY name").fetchall())
        images = tuple(row[0] for row in db.execute("SELECT image_id FROM images ORDER BY image_id"))
        layers = tuple(row[0] for row in db.execute("SELECT diff_id FROM layers ORDER BY diff_id"))
    snapshots = tuple(sorted(path.name for path in (store.root / "snapshots").iterdir()))
    blobs = tuple(sorted(str(digest) for digest in store.blobs.iter_digests()))
    return Inventory(tags, images, layers, snapshots, blobs)


def tmp_is_empty(store: Store) -> bool:
    return not any((store.root / "tmp").iterdir())


def flattened_names(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {member.name.rstrip("/"): member for member in archive.getmembers()}
