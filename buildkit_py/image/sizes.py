"""Image sizes people can compare with Docker's, and what the store holds on disk.

- An image's size is Docker's: the content sizes of its layers added up (`layer.content_size`: the files and
  symlinks, not the tar around them). `pybuild images` shows it.
- What a layer costs on disk is its tar, plus its unpacked snapshot when there is one (the same content again), plus
  the compressed copies made for push and save. `pybuild system df` adds these up (store/gc.py).

Content sizes are measured once per layer, from its tar, and kept in the store; layers stored before the store kept
them are measured the first time they are asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..digest import Digest
from ..layer.content_size import layer_content_size

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["content_sizes", "image_size"]


def content_sizes(store: Store, diff_ids: Iterable[Digest] | None = None) -> dict[Digest, int]:
    """The content size of each of `diff_ids` (default: every layer), measuring the ones not measured yet."""
    known = store.layers.content_sizes()
    wanted = known if diff_ids is None else {diff_id: known.get(diff_id) for diff_id in diff_ids}
    sizes: dict[Digest, int] = {}
    for diff_id, size in wanted.items():
        if size is None and diff_id in known:
            with store.layers.open(diff_id) as stream:
                size = layer_content_size(stream)
            store.layers.set_content_size(diff_id, size)
        sizes[diff_id] = size or 0
    return sizes


def image_size(store: Store, diff_ids: Iterable[Digest]) -> int:
    """Docker's size of an image with these layers (each layer of the chain counted, as Docker counts them)."""
    layers = list(diff_ids)
    sizes = content_sizes(store, layers)
    return sum(sizes[diff_id] for diff_id in layers)
