"""`pybuild load`: an archive of images, whatever its kind, into the store.

The kind is told by the files it holds: `oci-layout` and `index.json` make an OCI image layout (a Docker 25 archive
has those too, and its index carries digests, so it is read as OCI); `manifest.json` or `repositories` alone make a
docker archive. The archive may be a tar file, a tar stream (compressed or not) or an OCI layout folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..errors import StoreError
from .docker_archive import load_docker_source
from .ingest import IngestBatch, open_source
from .manifest import Platform
from .oci_layout import LAYOUT_FILE, load_oci_source

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["load_archive"]


def load_archive(store: Store, source: Path | str | BinaryIO, platform: Platform | str | None = None) -> list[str]:
    """Load every image of the archive; returns the tags loaded, and the id of each image loaded without a tag.
    Nothing is stored unless every image of the archive checks out."""
    if isinstance(source, str):
        source = Path(source)
    if isinstance(platform, str):
        platform = Platform.parse(platform)
    with open_source(store, source) as files, store.temp_dir("load") as work:
        batch = IngestBatch(store, work)
        if files.exists(LAYOUT_FILE) and files.exists("index.json"):
            load_oci_source(store, files, batch, platform)
        elif files.exists("manifest.json") or files.exists("repositories"):
            load_docker_source(store, files, batch)
        else:
            raise StoreError("not an image archive: it has neither index.json and oci-layout, nor manifest.json")
        return batch.commit()
