"""Bytes on disk, as `du` counts them: allocated blocks (st_blocks), every inode once however many paths reach it.

`docker_share` finds what Docker's daemon keeps for a set of images: for each image its config and metadata in the
imagedb, and for each layer of its chain the overlay2 folder, the layerdb entry (which holds the tar-split) and the
distribution metadata a push leaves. `pybuild_parts` splits a pybuild store root by what each file is for.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DOCKER_ROOT = Path("/var/lib/docker")
IMAGE_ROOT = DOCKER_ROOT / "image" / "overlay2"

Parts = dict[str, list[tuple[Path, bool]]]  # part -> (path, whether what is beneath a folder counts too)


@dataclass
class Usage:
    """Allocated bytes counted so far; an inode already counted (a hard link, a path listed twice) adds nothing."""

    seen: set[tuple[int, int]] = field(default_factory=set)
    bytes: int = 0

    def add(self, path: Path, deep: bool = True) -> int:
        """Count `path` and, for a folder when `deep`, everything beneath it (symlinks not followed); returns the
        bytes added."""
        before = self.bytes
        stack = [os.fspath(path)]
        while stack:
            current = stack.pop()
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in self.seen:
                continue
            self.seen.add(key)
            self.bytes += info.st_blocks * 512
            if deep and stat.S_ISDIR(info.st_mode):
                with os.scandir(current) as entries:
                    stack.extend(entry.path for entry in entries)
        return self.bytes - before


# -- Docker ------------------------------------------------------------------------------------------------------


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The layerdb names of a chain's prefixes: ChainID(L0) = L0, ChainID(L0..Ln) = sha256(ChainID(..Ln-1) + " " + Ln)."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


def docker_inspect(ids: Iterable[str], docker: str = "/usr/bin/docker") -> list[dict[str, object]]:
    """`docker image inspect` of every id still present (an id another user removed is left out)."""
    found: list[dict[str, object]] = []
    for image_id in dict.fromkeys(ids):
        result = subprocess.run([docker, "image", "inspect", image_id], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            found.extend(json.loads(result.stdout))
    return found


def docker_share(images: list[dict[str, object]]) -> Parts:
    """The paths Docker keeps for these images, by part: `layers` (overlay2 folders and their short links),
    `layerdb` (tar-split, sizes, cache ids), `images` (configs and their metadata), `distribution` (push records)."""
    parts: Parts = {"layers": [], "layerdb": [], "images": [], "distribution": []}
    for image in images:
        hex_id = str(image["Id"]).removeprefix("sha256:")
        parts["images"].append((IMAGE_ROOT / "imagedb" / "content" / "sha256" / hex_id, True))
        parts["images"].append((IMAGE_ROOT / "imagedb" / "metadata" / "sha256" / hex_id, True))
        graph = image.get("GraphDriver") or {}
        data = graph.get("Data") or {} if isinstance(graph, dict) else {}
        layer_dirs = [data.get("UpperDir", ""), *str(data.get("LowerDir") or "").split(":")]
        for diff in layer_dirs:
            if diff:
                folder = Path(diff).parent
                parts["layers"].append((folder, True))
                link = folder / "link"
                if link.is_file():
                    parts["layers"].append((DOCKER_ROOT / "overlay2" / "l" / link.read_text().strip(), True))
        rootfs = image.get("RootFS") or {}
        diff_ids = list(rootfs.get("Layers") or []) if isinstance(rootfs, dict) else []
        for chain_id in chain_ids(diff_ids):
            parts["layerdb"].append((IMAGE_ROOT / "layerdb" / "sha256" / chain_id.removeprefix("sha256:"), True))
        for diff_id in diff_ids:
            by_diff_id = (
                IMAGE_ROOT / "distribution" / "v2metadata-by-diffid" / "sha256" / diff_id.removeprefix("sha256:")
            )
            if by_diff_id.is_file():
                parts["distribution"].append((by_diff_id, True))
                for entry in json.loads(by_diff_id.read_text() or "[]"):
                    digest = str(entry.get("Digest", "")).removeprefix("sha256:")
                    if digest:
                        by_digest = IMAGE_ROOT / "distribution" / "diffid-by-digest" / "sha256" / digest
                        parts["distribution"].append((by_digest, True))
    return parts


# -- pybuild -----------------------------------------------------------------------------------------------------


def _blob_kinds(root: Path) -> dict[str, str]:
    """Blob hex -> what it is, from the store's database (read only)."""
    kinds: dict[str, str] = {}
    database = root / "meta.db"
    if not database.is_file():
        return kinds
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:

        def rows(query: str) -> list[str]:
            try:
                return [str(row[0]).removeprefix("sha256:") for row in connection.execute(query) if row[0]]
            except sqlite3.OperationalError:  # a table an older store does not have
                return []

        for hex_id in rows("SELECT digest FROM compressed_forms"):
            kinds[hex_id] = "blobs: compressed forms"
        for hex_id in rows("SELECT image_id FROM images"):
            kinds[hex_id] = "blobs: image configs"
        for hex_id in rows("SELECT recipe FROM layers"):
            kinds[hex_id] = "blobs: layer recipes"
        for hex_id in rows("SELECT diff_id FROM layers"):
            kinds[hex_id] = "blobs: layer tars"
    finally:
        connection.close()
    return kinds


def pybuild_parts(root: Path) -> Parts:
    """The store root's paths by part: snapshots, each kind of blob, the database, tmp, cache mounts, the rest."""
    parts: Parts = {}
    kinds = _blob_kinds(root)

    def put(part: str, path: Path, deep: bool = True) -> None:
        parts.setdefault(part, []).append((path, deep))

    for entry in sorted(root.iterdir()):
        if entry.name == "blobs":
            put("blobs: folders", entry, deep=False)
            for algorithm in sorted(p for p in entry.iterdir() if p.is_dir()):
                put("blobs: folders", algorithm, deep=False)
                for blob in algorithm.iterdir():
                    put(kinds.get(blob.name, "blobs: other"), blob)
        elif entry.name.startswith("meta.db"):
            put("meta.db", entry)
        elif entry.name in ("snapshots", "tmp", "cache-mounts"):
            put(entry.name + "/", entry)
        else:
            put("other", entry)
    return parts


def measure_parts(parts: Parts) -> tuple[int, dict[str, int]]:
    """(total, bytes per part), every inode counted once, in the first part that reaches it."""
    usage = Usage()
    sizes: dict[str, int] = {}
    for part, paths in parts.items():
        sizes[part] = sum(usage.add(path, deep) for path, deep in paths)
    return usage.bytes, sizes
