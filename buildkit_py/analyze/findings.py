"""Findings: where an image carries bytes it does not need, with the step that caused it and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..units import human_size
from .changes import Filesystem, LayerChange, Placed
from .filetree import FileEntry
from .layers import Layer

LARGE_FILE = 1 << 20
_CHMOD_RE = re.compile(r"\b(chmod|chown|chgrp)\b")
_SHOWN_PATHS = 5


@dataclass(frozen=True)
class Finding:
    kind: str  # deleted-later, overwritten, metadata-copy, package-cache, build-only
    layer: int  # the layer whose bytes are wasted
    location: str  # "Dockerfile:7", or "" for images not built here
    step: str
    wasted_bytes: int
    paths: tuple[str, ...]  # the largest few, largest first
    file_count: int
    cause: str
    fix: str

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "layer": self.layer,
            "location": self.location,
            "step": self.step,
            "wastedBytes": self.wasted_bytes,
            "fileCount": self.file_count,
            "paths": list(self.paths),
            "cause": self.cause,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class _Pattern:
    label: str
    match: Callable[[str], str]  # the cache root the path lies under, "" when it does not
    fix: str


def _under(prefix: str) -> Callable[[str], str]:
    return lambda path: prefix if path == prefix or path.startswith(prefix + "/") else ""


def _segment(name: str) -> Callable[[str], str]:
    marker = "/" + name + "/"

    def match(path: str) -> str:
        position = path.find(marker)
        return path[: position + len(marker) - 1] if position >= 0 else ""

    return match


CACHE_PATTERNS = (
    _Pattern(
        "apt package lists",
        _under("/var/lib/apt/lists"),
        "end the same RUN with `&& rm -rf /var/lib/apt/lists/*`, or use RUN --mount=type=cache,target=/var/lib/apt",
    ),
    _Pattern(
        "apt package cache",
        _under("/var/cache/apt"),
        "run `apt-get clean` in the same RUN, or use RUN --mount=type=cache,target=/var/cache/apt",
    ),
    _Pattern(
        "pip cache",
        _under("/root/.cache/pip"),
        "use `pip install --no-cache-dir`, or RUN --mount=type=cache,target=/root/.cache/pip",
    ),
    _Pattern(
        "apk cache",
        _under("/var/cache/apk"),
        "use `apk add --no-cache`, or RUN --mount=type=cache,target=/var/cache/apk",
    ),
    _Pattern(
        "node_modules/.cache",
        _segment("node_modules/.cache"),
        "delete node_modules/.cache in the same RUN, or mount it with RUN --mount=type=cache",
    ),
    _Pattern(
        "Python bytecode cache",
        _segment("__pycache__"),
        "set ENV PYTHONDONTWRITEBYTECODE=1 before the RUN, or delete __pycache__ in the same RUN",
    ),
)

BUILD_ONLY_PREFIXES = (
    "/tmp",
    "/var/tmp",
    "/root/.cache",
    "/root/.npm",
    "/root/.m2",
    "/root/.gradle",
    "/root/.cargo/registry",
    "/root/go/pkg",
    "/go/pkg",
    "/usr/src",
)


def _cache_root(path: str) -> tuple[_Pattern, str] | None:
    for pattern in CACHE_PATTERNS:
        root = pattern.match(path)
        if root:
            return pattern, root
    return None


def _largest(entries: Iterable[FileEntry]) -> tuple[tuple[str, ...], int, int]:
    ordered = sorted(entries, key=lambda entry: (-entry.size, entry.path))
    paths = tuple(entry.path for entry in ordered[:_SHOWN_PATHS])
    return paths, sum(entry.size for entry in ordered), len(ordered)


def _is_run(layer: Layer) -> bool:
    return (
        layer.step.startswith("RUN") or layer.created_by.startswith("/bin/sh -c") and "#(nop)" not in layer.created_by
    )


def find(layers: Sequence[Layer], changes: Sequence[LayerChange], final: Filesystem) -> list[Finding]:
    findings: list[Finding] = []

    def add(kind: str, layer: Layer, entries: list[FileEntry], cause: str, fix: str) -> None:
        paths, wasted, count = _largest(entries)
        if wasted <= 0:
            return
        cause = cause.format(count=count, files="file" if count == 1 else "files", size=human_size(wasted))
        findings.append(Finding(kind, layer.index, layer.dockerfile_line, layer.step, wasted, paths, count, cause, fix))

    # Package manager caches: whatever a layer writes under them ships with it, deleted later or not.
    for layer in layers:
        caches: dict[tuple[str, str], list[FileEntry]] = {}
        for entry in layer.files.files():
            found = None if entry.is_dir else _cache_root(entry.path)
            if found is not None:
                caches.setdefault((found[0].label, found[1]), []).append(entry)
        for (label, root), entries in sorted(caches.items()):
            pattern = next(pattern for pattern in CACHE_PATTERNS if pattern.label == label)
            add(
                "package-cache",
                layer,
                entries,
                f"{label} left in the layer: {{count}} {{files}}, {{size}} in {root}",
                pattern.fix,
            )

    for change in changes:
        deleter = layers[change.index]
        by_origin: dict[int, list[FileEntry]] = {}
        for placed in change.deleted:
            if _cache_root(placed.entry.path) is None:
                by_origin.setdefault(placed.layer, []).append(placed.entry)
        for origin, entries in sorted(by_origin.items()):
            source = layers[origin]
            fix = (
                f"delete them in the same RUN that creates them ({source.label}), or make them in a build stage "
                "and COPY --from only what the image needs"
                if _is_run(source)
                else f"leave them out of what {source.label} copies (.dockerignore, or a narrower source path)"
            )
            add(
                "deleted-later",
                source,
                entries,
                f"{{count}} {{files}} ({{size}}) added by {source.label} deleted by {deleter.label}: "
                f"the bytes still ship in layer {origin}",
                fix,
            )

        metadata_paths = {placed.entry.path for placed in change.metadata_only}
        by_origin = {}
        for placed in change.metadata_only:
            by_origin.setdefault(placed.layer, []).append(placed.entry)
        metadata_bytes = sum(placed.entry.size for placed in change.metadata_only)
        content_size = deleter.files.content_size
        looks_like_chmod = bool(_CHMOD_RE.search(deleter.created_by)) or 2 * metadata_bytes >= content_size
        if looks_like_chmod:
            for origin, entries in sorted(by_origin.items()):
                source = layers[origin]
                target = f"the step that adds them ({source.label})"
                fix = (
                    f"set mode and owner where the files are added: COPY --chmod=... --chown=... in {target}"
                    if not _is_run(source)
                    else f"chmod/chown in {target} itself, in the same RUN"
                )
                add(
                    "metadata-copy",
                    deleter,
                    entries,
                    f"{deleter.label} copies {{count}} unchanged {{files}} ({{size}}) into a new layer only to change "
                    "mode or owner",
                    fix,
                )
        else:
            metadata_paths = set()

        overwritten: dict[int, list[FileEntry]] = {}
        for placed in change.replaced:
            if placed.entry.path not in metadata_paths:
                overwritten.setdefault(placed.layer, []).append(placed.entry)
        for origin, entries in sorted(overwritten.items()):
            source = layers[origin]
            add(
                "overwritten",
                source,
                entries,
                f"{{count}} {{files}} ({{size}}) from {source.label} rewritten by {deleter.label}: both copies ship",
                f"produce the final version of these files in one step, or stop {source.label} from writing them",
            )

    # Build-only paths: large files that remain in the final image.
    build_only: dict[tuple[int, str], list[FileEntry]] = {}
    for placed in final.files():
        entry = placed.entry
        if entry.is_dir or entry.size < LARGE_FILE or _cache_root(entry.path) is not None:
            continue
        prefix = next((p for p in BUILD_ONLY_PREFIXES if entry.path.startswith(p + "/")), "")
        if prefix:
            build_only.setdefault((placed.layer, prefix), []).append(entry)
    for (index, prefix), entries in sorted(build_only.items()):
        add(
            "build-only",
            layers[index],
            entries,
            f"{{count}} large {{files}} ({{size}}) under the build-only path {prefix} ship in the image",
            "delete them in the same RUN, use RUN --mount=type=cache or type=tmpfs for them, or build in another "
            "stage and COPY --from only the result",
        )

    findings.sort(key=lambda finding: (-finding.wasted_bytes, finding.layer, finding.kind))
    return findings


__all__ = ["Finding", "Placed", "find"]
