"""What a container's root is made of, worked out from the store when it starts: the init layer and the image's layer
snapshots below its read-write layer, and its volumes, binds and tmpfs mounts."""

from __future__ import annotations

from pathlib import Path

from ..digest import Digest
from ..exec.initlayer import ensure_init_layer
from ..store import Store
from ..store.containers import ContainerRow
from .layout import ContainerLayout, init_layer_dir
from .runtime import RootfsPlan, to_mounts
from .spec import VOLUME, ContainerSpec

__all__ = ["image_lowers", "layer_snapshot", "rootfs_plan"]


def layer_snapshot(store: Store, diff_id: Digest) -> Path:
    """The layer's snapshot; one pulled or loaded and never unpacked is unpacked now."""
    existing = store.layers.snapshot(diff_id)
    if existing is not None:
        return existing
    from ..layer.snapshots import snapshot_path  # the layer package (tar, compression) only when needed

    return snapshot_path(store, diff_id)


def image_lowers(store: Store, row: ContainerRow) -> tuple[Path, ...]:
    """The init layer and the image's layer snapshots, topmost first."""
    diff_ids = store.images.chain(Digest.parse(row.image_id))
    init_layer = ensure_init_layer(init_layer_dir(store.root))
    return (init_layer, *(layer_snapshot(store, diff_id) for diff_id in reversed(diff_ids)))


def rootfs_plan(store: Store, row: ContainerRow, spec: ContainerSpec) -> RootfsPlan:
    layout = ContainerLayout(store.root, row.container_id)
    lowers = image_lowers(store, row)
    volume_paths = {
        mount.source: store.volumes.data_path(mount.source) for mount in spec.mounts if mount.kind == VOLUME
    }
    fill = tuple(
        (mount.target, volume_paths[mount.source])
        for mount in spec.mounts
        if mount.kind == VOLUME and mount.copy_image_content
    )
    for path in volume_paths.values():
        path.mkdir(parents=True, exist_ok=True)
    return RootfsPlan(
        lowers=lowers,
        upper=layout.upper,
        work=layout.work,
        mounts=to_mounts(spec, volume_paths),
        fill_volumes=fill,
    )
