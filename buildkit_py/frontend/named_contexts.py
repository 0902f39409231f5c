"""Named build contexts: `--build-context NAME=DIR` or `NAME=docker-image://REF`, as BuildKit takes them.

A named context stands in for what NAME would otherwise mean in `FROM NAME`, `COPY --from=NAME` and
`RUN --mount from=NAME`: a folder (its files as a tree), or another image. A stage named NAME is replaced by the
context of that name, as in BuildKit. NAME matches an image reference in its familiar form without `:latest`, so
`--build-context alpine=...` also answers `FROM docker.io/library/alpine:latest`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..context.dockerignore import load_ignore_rules
from ..errors import ContextError
from ..reference import InvalidReference, parse_reference

__all__ = ["ImageContext", "LocalContext", "NamedContext", "context_key", "find_context", "parse_build_contexts"]

_IMAGE_SCHEME = "docker-image://"
_OTHER_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


@dataclass(frozen=True)
class LocalContext:
    """A folder on this machine, read like the main build context: `exclude` holds its own .dockerignore."""

    path: Path
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageContext:
    """An image, from the store or its registry."""

    ref: str


NamedContext = LocalContext | ImageContext


def context_key(name: str) -> str:
    """The form names are compared in: an image reference's familiar form without `:latest`, else the name."""
    try:
        familiar = parse_reference(name).familiar
    except InvalidReference:
        return name
    return familiar.removesuffix(":latest")


def _parse_one(text: str, base_dir: Path) -> tuple[str, NamedContext]:
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name or not value:
        raise ContextError(f"invalid --build-context {text!r}: use NAME=DIR or NAME=docker-image://REF")
    if value.startswith(_IMAGE_SCHEME):
        ref = value.removeprefix(_IMAGE_SCHEME)
        try:
            parse_reference(ref)
        except InvalidReference as error:
            raise ContextError(f"invalid --build-context {name}: {error}") from None
        return context_key(name), ImageContext(ref)
    if _OTHER_SCHEME.match(value):
        raise ContextError(f"unsupported --build-context {name}={value}: pybuild takes a folder or docker-image://REF")
    path = (base_dir / value).resolve()
    if not path.is_dir():
        raise ContextError(f"--build-context {name}: {value} is not a folder")
    return context_key(name), LocalContext(path, load_ignore_rules(path, None).patterns)


def parse_build_contexts(texts: Iterable[str], base_dir: Path | None = None) -> dict[str, NamedContext]:
    """`NAME=VALUE` flags by name (folders relative to `base_dir`, default the working directory)."""
    contexts: dict[str, NamedContext] = {}
    for text in texts:
        key, context = _parse_one(text, base_dir or Path.cwd())
        if key in contexts:
            raise ContextError(f"--build-context {key} is given twice")
        contexts[key] = context
    return contexts


def find_context(contexts: Mapping[str, NamedContext], name: str) -> NamedContext | None:
    if not contexts:
        return None
    return contexts.get(context_key(name)) or contexts.get(name)
