"""The local store: content-addressed blobs, unpacked layer snapshots, and every record in one database.
See store.py for the layout and the interfaces."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .content import ContentStore
from .damage import Damage, DamagedContent, DamageRecords
from .images import ImageStore, ImageSummary
from .layers import LayerStore
from .snapshots import SnapshotStore
from .store import Store, default_root
from .tags import ABSENT, Absent, TagStore, normalize_tag

if TYPE_CHECKING:
    from .cache import CacheRecord, CacheStore
    from .forms import CompressedForm, FormStore
    from .registry_records import RegistryRecords
    from .statcache import StatCache
    from .steplog import StepLogStore, StepRow

_IMPORTED_ON_FIRST_USE = {  # as Store makes these interfaces: on first use (PEP 562)
    "CacheRecord": "cache",
    "CacheStore": "cache",
    "CompressedForm": "forms",
    "FormStore": "forms",
    "RegistryRecords": "registry_records",
    "StatCache": "statcache",
    "StepLogStore": "steplog",
    "StepRow": "steplog",
}


def __getattr__(name: str) -> Any:
    module = _IMPORTED_ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
