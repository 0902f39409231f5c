"""The local store: content-addressed blobs, unpacked layer snapshots, images, tags and build cache records."""

from __future__ import annotations

from .content import ContentStore
from .snapshots import SnapshotStore
from .store import ABSENT, Absent, CacheRecord, ImageSummary, Store, default_root, normalize_tag

__all__ = [
    "ABSENT",
    "Absent",
    "CacheRecord",
    "ContentStore",
    "ImageSummary",
    "SnapshotStore",
    "Store",
    "default_root",
    "normalize_tag",
]
