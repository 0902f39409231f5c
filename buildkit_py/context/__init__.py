"""The build context: which files a COPY source selects (`select`) and their checksums (`hashing`)."""

from __future__ import annotations

from .select import SelectedPath, select_sources, walk_selected

__all__ = ["SelectedPath", "select_sources", "walk_selected"]
