"""`pybuild diff A B`: how two images differ in size, layer by layer and file by file (container-diff's questions).

Layers pair up by diff_id where both images share them, then the rest by the same step, then by position. Files are
compared on the final filesystems, by content hash, type, link target, mode and owner (mtimes are ignored: a rebuild
touches them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..digest import Digest
from ..store import Store
from .changes import apply_layers
from .filetree import FileEntry, LayerFiles
from .layers import Image, Layer, load_image


@dataclass(frozen=True)
class LayerPair:
    a: Layer | None
    b: Layer | None
    match: str  # shared, step, position, only-a, only-b

    @property
    def delta(self) -> int:
        return (self.b.files.content_size if self.b else 0) - (self.a.files.content_size if self.a else 0)


@dataclass(frozen=True)
class FileDelta:
    path: str
    change: str  # added, removed, changed
    size_a: int
    size_b: int
    detail: str = ""  # what changed: content, mode, owner, type, link

    @property
    def delta(self) -> int:
        return self.size_b - self.size_a


@dataclass(frozen=True)
class ImageDiff:
    a: Image
    b: Image
    layers: tuple[LayerPair, ...]
    files: tuple[FileDelta, ...]  # largest |delta| first

    @property
    def size_delta(self) -> int:
        return self.b.content_size - self.a.content_size

    def of(self, change: str) -> list[FileDelta]:
        return [item for item in self.files if item.change == change]


def pair_layers(a: Image, b: Image) -> list[LayerPair]:
    b_by_id = {layer.diff_id: layer for layer in b.layers}
    used_b: set[int] = set()
    pairs: dict[int, LayerPair] = {}
    for layer in a.layers:
        match = b_by_id.get(layer.diff_id)
        if match is not None and match.index not in used_b:
            pairs[layer.index] = LayerPair(layer, match, "shared")
            used_b.add(match.index)
    rest_b = [layer for layer in b.layers if layer.index not in used_b]
    for layer in a.layers:
        if layer.index in pairs or not layer.created_by:
            continue
        match = next((other for other in rest_b if other.created_by == layer.created_by), None)
        if match is not None:
            pairs[layer.index] = LayerPair(layer, match, "step")
            rest_b.remove(match)
    for layer in a.layers:
        if layer.index not in pairs and rest_b:
            match = min(rest_b, key=lambda other: abs(other.index - layer.index))
            pairs[layer.index] = LayerPair(layer, match, "position")
            rest_b.remove(match)
    result = [pairs.get(layer.index, LayerPair(layer, None, "only-a")) for layer in a.layers]
    for other in rest_b:
        result.append(LayerPair(None, other, "only-b"))
    return sorted(result, key=lambda pair: (pair.b.index if pair.b else len(b.layers), pair.a.index if pair.a else 0))


def _final_files(image: Image) -> dict[str, FileEntry]:
    final, _ = apply_layers([layer.files for layer in image.layers])
    return {placed.entry.path: placed.entry for placed in final.files() if not placed.entry.is_dir}


def _what_changed(a: FileEntry, b: FileEntry) -> str:
    parts = []
    if a.type != b.type:
        parts.append("type")
    elif a.linkname != b.linkname:
        parts.append("link")
    elif a.size != b.size or (a.content_hash and b.content_hash and a.content_hash != b.content_hash):
        parts.append("content")
    if a.mode != b.mode:
        parts.append("mode")
    if (a.uid, a.gid) != (b.uid, b.gid):
        parts.append("owner")
    return ",".join(parts)


def diff_images(a: Image, b: Image) -> ImageDiff:
    files_a, files_b = _final_files(a), _final_files(b)
    deltas = [FileDelta(path, "removed", entry.size, 0) for path, entry in files_a.items() if path not in files_b]
    deltas += [FileDelta(path, "added", 0, entry.size) for path, entry in files_b.items() if path not in files_a]
    for path, entry in files_a.items():
        other = files_b.get(path)
        if other is not None:
            detail = _what_changed(entry, other)
            if detail:
                deltas.append(FileDelta(path, "changed", entry.size, other.size, detail))
    deltas.sort(key=lambda item: (-abs(item.delta), -max(item.size_a, item.size_b), item.path))
    return ImageDiff(a, b, tuple(pair_layers(a, b)), tuple(deltas))


def diff(source: Store, name_a: str, name_b: str) -> ImageDiff:
    """Both images' layers are read once each (shared layers once), contents hashed to tell real changes apart."""
    cache: dict[Digest, LayerFiles] = {}
    return diff_images(
        load_image(source, name_a, hash_content=True, cache=cache),
        load_image(source, name_b, hash_content=True, cache=cache),
    )


def _layer_json(layer: Layer | None) -> dict[str, Any] | None:
    if layer is None:
        return None
    return {
        "index": layer.index,
        "digestId": str(layer.diff_id),
        "sizeBytes": layer.files.content_size,
        "dockerfileLine": layer.dockerfile_line,
        "step": layer.step,
    }


def to_json(result: ImageDiff) -> dict[str, Any]:
    def image_json(image: Image) -> dict[str, Any]:
        return {
            "name": image.name,
            "imageId": str(image.image_id),
            "sizeBytes": image.content_size,
            "tarSizeBytes": image.tar_size,
            "layers": len(image.layers),
        }

    return {
        "imageA": image_json(result.a),
        "imageB": image_json(result.b),
        "sizeDeltaBytes": result.size_delta,
        "layers": [
            {"match": pair.match, "a": _layer_json(pair.a), "b": _layer_json(pair.b), "sizeDeltaBytes": pair.delta}
            for pair in result.layers
        ],
        "files": {
            change: [
                {"file": item.path, "sizeA": item.size_a, "sizeB": item.size_b, "sizeDelta": item.delta}
                | ({"detail": item.detail} if item.detail else {})
                for item in result.of(change)
            ]
            for change in ("added", "removed", "changed")
        },
    }
