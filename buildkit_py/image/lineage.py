"""Which images were built on which: Docker's parent and child images, without Docker's Parent field.

An image is built on another when its layers start with all of the other's layers and its history starts with all of
the other's history entries and goes on past them: a build copies its base's history and adds its own steps after.
(A pulled image built on the same base elsewhere counts too: its layers and history say the same.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..digest import Digest
from .config import ImageConfig
from .stored import image_config

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["children_of", "has_children", "parents_of"]


def _built_on(child: ImageConfig, parent: ImageConfig) -> bool:
    layers, history = len(parent.diff_ids), len(parent.history)
    return (
        child.diff_ids[:layers] == parent.diff_ids
        and len(child.history) > history
        and child.history[:history] == parent.history
    )


def children_of(store: Store, image_id: Digest) -> list[Digest]:
    """The images of the store built on `image_id`."""
    parent = image_config(store, image_id)
    children = []
    for other_id, chain in store.images.chains().items():
        if other_id == image_id or chain[: len(parent.diff_ids)] != parent.diff_ids:
            continue
        if _built_on(image_config(store, other_id), parent):
            children.append(other_id)
    return children


def has_children(store: Store, image_id: Digest) -> bool:
    return bool(children_of(store, image_id))


def parents_of(store: Store, image_id: Digest) -> list[Digest]:
    """The images of the store `image_id` was built on, nearest first."""
    child = image_config(store, image_id)
    parents = []
    for other_id, chain in store.images.chains().items():
        if other_id == image_id or child.diff_ids[: len(chain)] != chain:
            continue
        other = image_config(store, other_id)
        if _built_on(child, other):
            parents.append((len(other.history), other_id))
    return [parent for _, parent in sorted(parents, reverse=True)]
