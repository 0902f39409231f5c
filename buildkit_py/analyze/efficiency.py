"""dive's efficiency score and inefficient files (`dive/filetree/efficiency.go`, `dive/image/analysis.go`).

For every leaf path of every layer tree, in layer order: add its size to the path's cumulative size and remember the
smallest size seen. A whiteout's size is 0 when it hides a file, and the summed size of the hidden subtree (the
directory's own entry included) when it hides a directory of the layers below. Paths seen in two or more layers are
"inefficient"; the wasted bytes are the sum of their cumulative sizes (every copy, the smallest one too). The score is
sum(smallest) / sum(cumulative) over all paths, 1.0 when nothing has a size.

Two of dive's quirks are kept on purpose so the numbers match: a whiteout whose target is not in the layers below
stops the walk of the rest of that layer, and an implicit directory (no tar entry of its own) counts as a file.

With `base_layers` (analyze --exclude-base), the first layers are the base image's and only the others count: a path
is seen only in layers above the base, a whiteout is worth only what it hides of those layers (deleting the base's
apt lists wastes nothing the Dockerfile could save), and the user's bytes are those above the base. dive's own
figures are the default, where only layer 0 is left out of the user's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .filetree import LayerFiles, Node, Tree


@dataclass
class PathEfficiency:
    """dive's EfficiencyData: one path, how many layer leaves named it, its cumulative and smallest sizes."""

    path: str
    layers: list[int] = field(default_factory=list)
    cumulative_size: int = 0
    min_size: int = -1

    @property
    def count(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class Efficiency:
    score: float
    inefficient: tuple[PathEfficiency, ...]  # largest cumulative size first
    size_bytes: int
    user_size_bytes: int

    @property
    def wasted_bytes(self) -> int:
        return sum(item.cumulative_size for item in self.inefficient)

    @property
    def wasted_user_percent(self) -> float:
        """wasted / bytes above the base layer; a ratio despite the name. Division by zero behaves as Go's floats."""
        if self.user_size_bytes:
            return self.wasted_bytes / self.user_size_bytes
        return math.inf if self.wasted_bytes else math.nan

    @property
    def reclaimable_bytes(self) -> int:
        """What removing the waste would actually save: every copy beyond the smallest."""
        return sum(item.cumulative_size - item.min_size for item in self.inefficient)


def _whiteout_size(below: Tree, counted: Tree, node: Node) -> int | None:
    """The bytes a whiteout hides of the `counted` layers; None when its target is missing from all the layers
    `below` (dive then abandons the layer)."""
    if below.get_node(node.path) is None:
        return None
    hidden = counted.get_node(node.path)
    if hidden is None or not hidden.is_dir:
        return 0
    return sum(child.size for child in hidden.visit_child_first())


def efficiency(layers: Sequence[LayerFiles], base_layers: int = 0) -> Efficiency:
    """dive's figures; with `base_layers`, those of the layers above the base only (see the module docstring)."""
    trees = [Tree.from_layer(layer) for layer in layers]
    by_path: dict[str, PathEfficiency] = {}
    order: list[PathEfficiency] = []
    # dive stacks trees[0..i-1] onto a copy of trees[0] for each whiteout; keep that stack as we go instead.
    below = trees[0].copy() if trees else Tree()
    counted = below if not base_layers else Tree()  # the counted layers only, for what a whiteout hides
    for index, tree in enumerate(trees):
        if index < base_layers:
            if index:
                below.stack(tree)
            continue
        for node in tree.nodes(keep=lambda candidate: candidate.is_leaf):
            if node.is_whiteout:
                size = _whiteout_size(below, counted, node)
                if size is None:
                    break
            else:
                size = node.size
            path = node.path
            data = by_path.get(path)
            if data is None:
                data = by_path[path] = PathEfficiency(path)
            data.cumulative_size += size
            if data.min_size < 0 or size < data.min_size:
                data.min_size = size
            data.layers.append(index)
            if data.count == 2:
                order.append(data)
        below.stack(tree)
        if counted is not below:
            counted.stack(tree)

    minimum = sum(data.min_size for data in by_path.values())
    discovered = sum(data.cumulative_size for data in by_path.values())
    score = 1.0 if discovered == 0 else minimum / discovered
    inefficient = tuple(sorted(order, key=lambda data: (-data.cumulative_size, data.path)))
    sizes = [layer.content_size for layer in layers]
    user_sizes = sizes[base_layers:] if base_layers else sizes[1:]
    return Efficiency(score=score, inefficient=inefficient, size_bytes=sum(sizes), user_size_bytes=sum(user_sizes))
