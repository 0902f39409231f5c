"""Cache keys: blake3 of an op's own definition, its inputs' keys (not their digests) and the content it reads.

Using the inputs' keys rather than their digests is what lets identical work on identical content hit even when the
graph above it differs in things that are not identity (the context's folder, the .dockerignore patterns)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..digest import Digest, digest_json
from .ops import Op


def _substitute(value: Any, replacements: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return replacements.get(value, value)
    if isinstance(value, list):
        return [_substitute(item, replacements) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, replacements) for key, item in value.items()}
    return value


def keyed_definition(op: Op, input_keys: Mapping[Digest, Digest]) -> dict[str, Any]:
    """The op's cache definition with every input digest replaced by that input's cache key."""
    replacements = {str(digest): str(input_keys[digest]) for digest in op.inputs()}
    keyed: dict[str, Any] = _substitute(op.cache_definition(), replacements)
    return keyed


def cache_key(op: Op, input_keys: Mapping[Digest, Digest], content: Sequence[Digest | None] = ()) -> Digest:
    return digest_json(
        {
            "definition": keyed_definition(op, input_keys),
            "content": [None if item is None else str(item) for item in content],
        }
    )
