"""The local store: content-addressed blobs, unpacked layer snapshots, and every record in one database.
See store.py for the layout and the interfaces."""

from __future__ import annotations

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
