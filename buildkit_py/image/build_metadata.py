"""`pybuild build --metadata-file FILE`: what the build made, under BuildKit's keys.

containerimage.config.digest   the image id (sha256 of the config)
containerimage.digest          the manifest's digest: the pushed one, or without a push the one `pybuild push`
                               would send (Docker v2 schema 2, gzip layers, compressed here)
containerimage.descriptor      that manifest's media type, digest and size
image.name                     the tags, comma-separated
pybuild.layers                 each layer's blob: media type, digest, size, and its diff_id
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..digest import Digest
from ..fs.output import write_output
from .compressed import known_layers, layer_media_type
from .config import ImageConfig
from .manifest import DOCKER_CONFIG, DOCKER_MANIFEST, Descriptor, Manifest

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["build_metadata", "local_manifest", "write_metadata_file"]


def local_manifest(store: Store, image_id: Digest) -> Manifest:
    """The manifest `pybuild push` sends for an image whose layers it compresses itself."""
    config_bytes = store.images.config_bytes(image_id)
    config = ImageConfig.from_bytes(config_bytes)
    blobs = known_layers(store, config.diff_ids, "gzip")
    media_type = layer_media_type("gzip", oci=False)
    return Manifest(
        config=Descriptor(DOCKER_CONFIG, image_id, len(config_bytes)),
        layers=tuple(Descriptor(media_type, blobs[d].digest, blobs[d].size) for d in config.diff_ids),
        media_type=DOCKER_MANIFEST,
    )


def build_metadata(
    store: Store, image_id: Digest, names: Sequence[str], pushed: Manifest | None = None
) -> dict[str, Any]:
    manifest = pushed or local_manifest(store, image_id)
    data = manifest.to_bytes()
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    diff_ids = ImageConfig.from_bytes(store.images.config_bytes(image_id)).diff_ids
    return {
        "containerimage.config.digest": str(image_id),
        "containerimage.digest": str(digest),
        "containerimage.descriptor": {"mediaType": manifest.media_type, "digest": str(digest), "size": len(data)},
        "image.name": ",".join(names),
        "pybuild.layers": [
            {**layer.to_json(), "diffID": str(diff_id)}
            for layer, diff_id in zip(manifest.layers, diff_ids, strict=True)
        ],
    }


def write_metadata_file(path: Path, metadata: dict[str, Any]) -> None:
    """Written as every output file is: a device or fifo in place, a regular file atomically."""
    write_output(path, json.dumps(metadata, indent=2) + "\n", "--metadata-file")
