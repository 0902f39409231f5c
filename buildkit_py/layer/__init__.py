"""Layers: snapshot folders in overlayfs format to tar and back, and their compression.

Names are loaded on first use: a build that unpacks and compresses nothing never imports tarfile's codecs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LayerInfo": "generate",
    "compress_stream": "compression",
    "detect_compression": "compression",
    "is_empty_snapshot": "generate",
    "open_decompressed": "compression",
    "unpack_layer": "unpack",
    "write_layer_tar": "generate",
}

__all__ = [
    "LayerInfo",
    "compress_stream",
    "detect_compression",
    "is_empty_snapshot",
    "open_decompressed",
    "unpack_layer",
    "write_layer_tar",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
