"""`pybuild import`: a root filesystem tarball becomes a one-layer image, like `docker import`.

The tar (plain, gzip, zstd, bzip2 or xz) is the layer as it is: its uncompressed bytes are kept and named by their
sha256, and unpacked (as root: device nodes, owners, setuid bits kept) into the layer's snapshot. The image's config is
given ready-made: `--change` strings are Dockerfile instructions, which the frontend applies (`frontend/changes.py`);
this package knows image formats, not Dockerfiles.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..digest import Digest
from ..store import normalize_tag
from .config import ContainerConfig, HistoryEntry, ImageConfig, rfc3339
from .ingest import IngestBatch
from .manifest import host_platform

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["import_rootfs"]


def import_rootfs(
    store: Store,
    source: Path | str | BinaryIO,
    name: str | None = None,
    *,
    config: ContainerConfig | None = None,
    message: str = "",
) -> Digest:
    """Store the tarball as a one-layer image (tagged `name` when given) with `config` (empty when not given: apply
    `--change` strings with `frontend.changes.apply_changes` first); returns the image id."""
    tag = normalize_tag(name) if name else None
    if isinstance(source, str):
        source = Path(source)
    origin = str(source) if isinstance(source, Path) else "-"
    with store.temp_dir("import") as work:
        batch = IngestBatch(store, work)
        if isinstance(source, Path):
            with open(source, "rb") as stream:
                diff_id = batch.add_layer_stream(stream, origin)
        else:
            diff_id = batch.add_layer_stream(source, origin)
        created = rfc3339(time.time())
        platform = host_platform()
        image = ImageConfig(
            config=config or ContainerConfig(),
            diff_ids=(diff_id,),
            history=(HistoryEntry(created=created, created_by="", comment=message or f"Imported from {origin}"),),
            architecture=platform.architecture,
            os=platform.os,
            variant=platform.variant,
            created=created,
        )
        batch.add_image(image.to_bytes(), [tag] if tag else [])
        batch.commit()
    return batch.image_ids[0]
