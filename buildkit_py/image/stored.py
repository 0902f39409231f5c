"""Images in the store, as configs: the store keeps bytes and records, this reads and writes the format."""

from __future__ import annotations

from ..digest import Digest
from ..store import Store
from .config import ImageConfig

__all__ = ["image_config", "put_image", "put_image_bytes"]


def put_image(store: Store, config: ImageConfig) -> Digest:
    """Store an image config; its sha256 is the image id (as Docker's). Every layer must be committed first."""
    return store.images.put(config.to_bytes(), config.diff_ids, config.created)


def put_image_bytes(store: Store, data: bytes) -> Digest:
    """Store an image config byte for byte (one loaded or pulled keeps its id, the sha256 of these bytes)."""
    config = ImageConfig.from_bytes(data)
    return store.images.put(data, config.diff_ids, config.created)


def image_config(store: Store, image_id: Digest) -> ImageConfig:
    return ImageConfig.from_bytes(store.images.config_bytes(image_id))
