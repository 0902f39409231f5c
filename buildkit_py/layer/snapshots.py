"""A layer's unpacked form, made from its blob when the store has none yet (a layer pulled or loaded)."""

from __future__ import annotations

from pathlib import Path

from ..digest import Digest
from ..store import Store

__all__ = ["snapshot_path"]


def snapshot_path(store: Store, diff_id: Digest) -> Path:
    """The layer unpacked (overlay form), for use as an overlay lowerdir."""
    existing = store.layers.snapshot(diff_id)
    if existing is not None:
        return existing
    from .unpack import unpack_layer  # lazy: unpacking only when the snapshot is missing

    with store.temp_dir("unpack") as work:
        target = work / "root"
        target.mkdir()
        with store.layers.open(diff_id) as stream:
            unpack_layer(stream, target)
        return store.layers.add_snapshot(diff_id, target)
