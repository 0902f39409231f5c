"""Where the bytes go: layer analysis (dive's efficiency), findings, image comparison and CI size gates."""

from __future__ import annotations

from .analysis import ImageAnalysis, analyze, analyze_image
from .efficiency import Efficiency, efficiency
from .findings import Finding
from .layers import Image, load_image

__all__ = [
    "Efficiency",
    "Finding",
    "Image",
    "ImageAnalysis",
    "analyze",
    "analyze_image",
    "efficiency",
    "load_image",
]
