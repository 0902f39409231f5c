"""What each layer does to the filesystem below it, with OCI semantics (whiteouts and opaque directories)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .filetree import FileEntry, LayerFiles


@dataclass(frozen=True)
class Placed:
    """A file as the stacked filesystem holds it: its entry and the layer that put it there."""

    entry: FileEntry
    layer: int


class _Dir:
    __slots__ = ("children", "placed")

    def __init__(self) -> None:
        self.children: dict[str, _Dir] = {}
        self.placed: Placed | None = None

    def walk(self) -> Iterator[Placed]:
        stack = [self]
        while stack:
            node = stack.pop()
            if node.placed is not None:
                yield node.placed
            stack.extend(node.children.values())


class Filesystem:
    """The merged view of layers 0..n, one node per path."""

    def __init__(self) -> None:
        self.root = _Dir()

    def _node(self, path: str, create: bool) -> _Dir | None:
        node = self.root
        for name in path.strip("/").split("/"):
            if not name:
                continue
            child = node.children.get(name)
            if child is None:
                if not create:
                    return None
                child = node.children[name] = _Dir()
            node = child
        return node

    def get(self, path: str) -> Placed | None:
        node = self._node(path, create=False)
        return node.placed if node is not None else None

    def put(self, placed: Placed) -> None:
        node = self._node(placed.entry.path, create=True)
        assert node is not None
        if not placed.entry.is_dir:
            node.children.clear()
        node.placed = placed

    def remove(self, path: str) -> list[Placed]:
        parent_path, name = posixpath.split(path)
        parent = self._node(parent_path, create=False)
        if parent is None or name not in parent.children:
            return []
        return list(parent.children.pop(name).walk())

    def clear(self, path: str) -> list[Placed]:
        node = self._node(path, create=False)
        if node is None:
            return []
        removed = [placed for child in node.children.values() for placed in child.walk()]
        node.children.clear()
        return removed

    def files(self) -> Iterator[Placed]:
        return self.root.walk()


def top_dir(path: str) -> str:
    """ "/usr" for "/usr/lib/x", "/" for a file at the root."""
    parts = path.strip("/").split("/")
    return "/" + parts[0] if len(parts) > 1 else "/"


@dataclass
class LayerChange:
    index: int
    added: int = 0
    added_bytes: int = 0
    modified: int = 0
    modified_bytes: int = 0
    removed: int = 0
    removed_bytes: int = 0
    by_top_dir: dict[str, int] = field(default_factory=dict)
    deleted: list[Placed] = field(default_factory=list)  # earlier files this layer's whiteouts hide
    replaced: list[Placed] = field(default_factory=list)  # earlier files this layer writes over
    metadata_only: list[Placed] = field(default_factory=list)  # earlier files re-added with only mode/owner changed


def apply_layers(layers: Sequence[LayerFiles]) -> tuple[Filesystem, list[LayerChange]]:
    filesystem = Filesystem()
    changes = []
    for index, layer in enumerate(layers):
        change = LayerChange(index)
        hidden = [placed for path in layer.opaque_dirs for placed in filesystem.clear(path)]
        hidden += [placed for path in layer.whiteouts for placed in filesystem.remove(path)]
        for placed in hidden:
            if not placed.entry.is_dir:
                change.removed += 1
                change.removed_bytes += placed.entry.size
                change.deleted.append(placed)
        for entry in layer.files():
            below = filesystem.get(entry.path)
            if not entry.is_dir:
                change.by_top_dir[top_dir(entry.path)] = change.by_top_dir.get(top_dir(entry.path), 0) + entry.size
                if below is None or below.entry.is_dir:
                    change.added += 1
                    change.added_bytes += entry.size
                else:
                    change.modified += 1
                    change.modified_bytes += entry.size
                    change.replaced.append(below)
                    if entry.same_content(below.entry) and not entry.same_metadata(below.entry):
                        change.metadata_only.append(below)
            filesystem.put(Placed(entry, index))
        changes.append(change)
    return filesystem, changes
