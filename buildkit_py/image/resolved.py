"""A base image as a build needs it, and the call that finds one by reference.

The frontend asks an ImageResolver for FROM and COPY --from images; the store and the registry client answer. It
lives here, below both, so that neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..digest import Digest
from .config import ImageConfig

__all__ = ["ImageResolver", "ResolvedImage"]


@dataclass(frozen=True)
class ResolvedImage:
    """A base image as the frontend needs it: its id and its config (env, workdir, onbuild triggers, history)."""

    ref: str
    image_id: Digest
    config: ImageConfig


class ImageResolver(Protocol):
    def __call__(self, ref: str) -> ResolvedImage:
        """Find (or fetch) the image `ref`; raise buildkit_py.errors.ImageNotFound when there is none."""
        ...
