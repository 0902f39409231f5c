"""The build context: which of its files COPY and ADD may see (`dockerignore`), which files a source selects
(`select`), and their checksums (`hashing`)."""

from __future__ import annotations

from .dockerignore import (
    IgnoreRules,
    MatchType,
    compile_pattern,
    load_ignore_rules,
    parse_ignore_file,
    read_patterns,
)
from .select import SelectedPath, select_sources, walk_selected

__all__ = [
    "IgnoreRules",
    "MatchType",
    "SelectedPath",
    "compile_pattern",
    "load_ignore_rules",
    "parse_ignore_file",
    "read_patterns",
    "select_sources",
    "walk_selected",
]
