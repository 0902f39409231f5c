"""Talking to OCI registries: the distribution API client, its auth, and pull and push of images in the store."""

from __future__ import annotations

from .client import RegistryClient, TransportOptions
from .pull import PullResult, pull_image
from .push import PushResult, push_image
from .resolver import PullingImageResolver

__all__ = [
    "PullResult",
    "PullingImageResolver",
    "PushResult",
    "RegistryClient",
    "TransportOptions",
    "pull_image",
    "push_image",
]
