"""The local store: content-addressed blobs, unpacked layer snapshots, and every record in one database.
See store.py for the layout and the interfaces. Names are loaded on first use: a command loads only the records it
touches."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import CacheRecord, CacheStore
    from .content import ContentStore
    from .damage import Damage, DamagedContent, DamageRecords
    from .downloads import Download, DownloadRecords
    from .forms import CompressedForm, FormStore
    from .images import ImageStore, ImageSummary
    from .layers import LayerStore
    from .registry_records import RegistryRecords
    from .snapshots import SnapshotStore
    from .statcache import StatCache
    from .steplog import StepLogStore, StepRow
    from .store import Store, default_root
    from .tags import ABSENT, Absent, TagStore, normalize_tag

_EXPORTS = {
    "ABSENT": "tags",
    "Absent": "tags",
    "CacheRecord": "cache",
    "CacheStore": "cache",
    "CompressedForm": "forms",
    "ContentStore": "content",
    "Damage": "damage",
    "DamageRecords": "damage",
    "DamagedContent": "damage",
    "Download": "downloads",
    "DownloadRecords": "downloads",
    "FormStore": "forms",
    "ImageStore": "images",
    "ImageSummary": "images",
    "LayerStore": "layers",
    "RegistryRecords": "registry_records",
    "SnapshotStore": "snapshots",
    "StatCache": "statcache",
    "StepLogStore": "steplog",
    "StepRow": "steplog",
    "Store": "store",
    "TagStore": "tags",
    "default_root": "store",
    "normalize_tag": "tags",
}

__all__ = [
    "ABSENT",
    "Absent",
    "CacheRecord",
    "CacheStore",
    "CompressedForm",
    "ContentStore",
    "Damage",
    "DamageRecords",
    "DamagedContent",
    "Download",
    "DownloadRecords",
    "FormStore",
    "ImageStore",
    "ImageSummary",
    "LayerStore",
    "RegistryRecords",
    "SnapshotStore",
    "StatCache",
    "StepLogStore",
    "StepRow",
    "Store",
    "TagStore",
    "default_root",
    "normalize_tag",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'buildkit_py.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
