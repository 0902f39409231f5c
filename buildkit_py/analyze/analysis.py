"""One image analysed: layers with their steps, dive's efficiency, the largest files and directories, findings."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..store import Store
from .changes import LayerChange, Placed, apply_layers
from .efficiency import Efficiency, efficiency
from .findings import Finding, find
from .layers import Image, load_image

TOP = 20


@dataclass(frozen=True)
class ImageAnalysis:
    image: Image
    efficiency: Efficiency
    changes: tuple[LayerChange, ...]
    largest_files: tuple[Placed, ...]
    largest_dirs: tuple[tuple[str, int], ...]
    findings: tuple[Finding, ...]
    excluded_base_layers: int = 0  # the base image's layers left out of the efficiency figures (--exclude-base)

    @property
    def wasted_bytes(self) -> int:
        return self.efficiency.wasted_bytes


def analyze_image(image: Image, top: int = TOP, exclude_base: bool = False) -> ImageAnalysis:
    """With `exclude_base`, the efficiency figures count only the layers above the base image (when it is known
    which they are); otherwise they are dive's."""
    excluded = image.base_layers if exclude_base else 0
    layer_files = [layer.files for layer in image.layers]
    final, changes = apply_layers(layer_files)
    files = [placed for placed in final.files() if not placed.entry.is_dir]
    largest = sorted(files, key=lambda placed: (-placed.entry.size, placed.entry.path))[:top]
    dir_sizes: dict[str, int] = {}
    for placed in files:
        parent = posixpath.dirname(placed.entry.path)
        while parent not in ("/", ""):
            dir_sizes[parent] = dir_sizes.get(parent, 0) + placed.entry.size
            parent = posixpath.dirname(parent)
    largest_dirs = sorted(dir_sizes.items(), key=lambda item: (-item[1], item[0]))[:top]
    return ImageAnalysis(
        image=image,
        efficiency=efficiency(layer_files, base_layers=excluded),
        changes=tuple(changes),
        largest_files=tuple(largest),
        largest_dirs=tuple(largest_dirs),
        findings=tuple(find(image.layers, changes, final)),
        excluded_base_layers=excluded,
    )


def analyze(source: Store, name: str, top: int = TOP, exclude_base: bool = False) -> ImageAnalysis:
    """Analyse an image in the store by name or id; reads only tar headers."""
    return analyze_image(load_image(source, name), top=top, exclude_base=exclude_base)
