"""`rmi` and `image prune` as Docker's daemon answers them, over the store's untag-and-delete.

Docker keeps an image other images were built on (image/lineage.py): removing its last tag only untags it, removing
it by id is refused, forced or not. Deleting an image also deletes the untagged images it was built on that nothing
else is built on any more. `image prune` deletes the dangling images (untagged, nothing built on them); with `all`,
every image, children before the images they were built on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .lineage import has_children, parents_of

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["ImagePruneReport", "prune_images", "remove_image"]


@dataclass(frozen=True)
class ImagePruneReport:
    lines: tuple[str, ...]  # Docker's `untagged: NAME` and `deleted: sha256:...` (images, then layers) lines
    bytes_freed: int


def remove_image(store: Store, name: str, *, force: bool = False) -> list[str]:
    """`docker rmi NAME`'s lines (`Untagged: ...`, `Deleted: ...`)."""
    image_id, _ = store.lookup(name)
    parents = parents_of(store, image_id)
    lines = store.remove_image(name, force=force, has_children=lambda i: has_children(store, i))
    if f"Deleted: {image_id}" not in lines:
        return lines
    for parent in parents:
        if store.tags.of(parent) or has_children(store, parent):
            break
        lines += store.remove_image(str(parent), has_children=lambda i: has_children(store, i))
    return lines


def prune_images(store: Store, *, all: bool = False) -> ImagePruneReport:
    from ..store.gc import layer_disk_sizes  # lazy: only prune measures sizes on disk; `rmi` does not load store.gc

    sizes = layer_disk_sizes(store)
    lines: list[str] = []
    while True:
        removed = False
        for summary in store.images.summaries():
            if not store.images.has(summary.image_id) or (summary.tags and not all):
                continue
            if has_children(store, summary.image_id):
                continue
            lines += remove_image(store, str(summary.image_id), force=True)
            removed = True
        if not removed or not all:
            break
    left = store.layers.sizes()
    freed = sum(size for diff_id, size in sizes.items() if diff_id not in left)
    return ImagePruneReport(lines=tuple(line[0].lower() + line[1:] for line in lines), bytes_freed=freed)
