"""`pybuild diff A B`: how two images differ in size, layer by layer and file by file (container-diff's questions).

Layers pair up by content (the same diff_id) where both images share them, then the rest by the same Dockerfile step
(the history's `created_by`), each in order; a layer matched by neither is only in its image. Position alone never
pairs two layers: a step inserted in the middle would pair every later layer with the wrong one. Files are compared on
the final filesystems, by content hash, type, link target, mode and owner (mtimes are ignored: a rebuild touches them
all).
"""

from __future__ import annotations

from collections.abc import Callable
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
    match: str  # shared, step, only-a, only-b

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


def _pair_by(
    a: Image, rest_b: list[Layer], pairs: dict[int, LayerPair], key: Callable[[Layer], str], match: str
) -> None:
    """Pair each unpaired layer of `a`, in order, with the first unpaired layer of `rest_b` of the same key."""
    for layer in a.layers:
        wanted = key(layer)
        if layer.index in pairs or not wanted:
            continue
        found = next((other for other in rest_b if key(other) == wanted), None)
        if found is not None:
            pairs[layer.index] = LayerPair(layer, found, match)
            rest_b.remove(found)


def pair_layers(a: Image, b: Image) -> list[LayerPair]:
    pairs: dict[int, LayerPair] = {}
    rest_b = list(b.layers)
    _pair_by(a, rest_b, pairs, lambda layer: str(layer.diff_id), "shared")
    _pair_by(a, rest_b, pairs, lambda layer: layer.created_by, "step")
    # In B's order; a layer only in A goes right after the B layer its predecessor in A was paired with.
    ordered: list[tuple[float, int, LayerPair]] = []
    after = -0.5
    for layer in a.layers:
        pair = pairs.get(layer.index)
        if pair is not None and pair.b is not None:
            after = pair.b.index
            ordered.append((after, layer.index, pair))
        else:
            ordered.append((after + 0.5, layer.index, LayerPair(layer, None, "only-a")))
    ordered += [(other.index, -1, LayerPair(None, other, "only-b")) for other in rest_b]
    return [pair for _, _, pair in sorted(ordered, key=lambda item: (item[0], item[1]))]


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
