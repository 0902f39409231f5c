"""The build context: which of its files COPY and ADD may see (`dockerignore`), which files a source selects
(`select`), and their checksums (`hashing`). Names are loaded on first use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dockerignore import (
        IgnoreRules,
        MatchType,
        compile_pattern,
        load_ignore_rules,
        parse_ignore_file,
        read_patterns,
    )
    from .select import SelectedPath, select_sources, walk_selected

_EXPORTS = {
    "IgnoreRules": "dockerignore",
    "MatchType": "dockerignore",
    "compile_pattern": "dockerignore",
    "load_ignore_rules": "dockerignore",
    "parse_ignore_file": "dockerignore",
    "read_patterns": "dockerignore",
    "SelectedPath": "select",
    "select_sources": "select",
    "walk_selected": "select",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'buildkit_py.context' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
