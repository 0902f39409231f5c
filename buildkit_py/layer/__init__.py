"""Layers: snapshot folders in overlayfs format to tar and back, and their compression."""

from .compression import compress_stream, detect_compression, open_decompressed
from .generate import LayerInfo, is_empty_snapshot, write_layer_tar
from .unpack import unpack_layer

__all__ = [
    "LayerInfo",
    "compress_stream",
    "detect_compression",
    "is_empty_snapshot",
    "open_decompressed",
    "unpack_layer",
    "write_layer_tar",
]
