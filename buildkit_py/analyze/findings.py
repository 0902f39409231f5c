"""Findings: where an image carries bytes it does not need, with the step that caused it and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..units import human_size
from .caches import cache_root
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
    in_base: bool = False  # the wasted bytes are in a layer of the base image, out of this Dockerfile's reach

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
            "inBaseImage": self.in_base,
        }


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


def _largest(entries: Iterable[FileEntry]) -> tuple[tuple[str, ...], int, int]:
    ordered = sorted(entries, key=lambda entry: (-entry.size, entry.path))
    paths = tuple(entry.path for entry in ordered[:_SHOWN_PATHS])
    return paths, sum(entry.size for entry in ordered), len(ordered)


def _is_run(layer: Layer) -> bool:
    return (
        layer.step.startswith("RUN") or layer.created_by.startswith("/bin/sh -c") and "#(nop)" not in layer.created_by
    )


SLIMMER_BASE = (
    "no step of this Dockerfile can take bytes out of the base image's layers: use a slimmer base image (a -slim "
    "or alpine variant), or a multi-stage build whose final stage starts from a smaller base"
)
_BASE_DELETED = (
    "deleting a base image's files saves nothing, since its layers ship unchanged: drop the deletion, or use a "
    "slimmer base image that does not have them"
)
_BASE_METADATA = (
    "a mode or owner change copies each of the base image's files whole into a new layer: leave them as they are, "
    "or use a base image whose files already have the mode and owner you need"
)
_BASE_OVERWRITTEN = (
    "the base image's copy ships as well: rewrite fewer of its files, or use a base image that already has the "
    "version you need"
)


def _where(root_count: int, largest_root: str) -> str:
    return f"in {largest_root}" if root_count == 1 else f"in {root_count} folders, the largest {largest_root}"


class _Findings:
    """Findings as they are found; each names the layer whose bytes are wasted."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = layers
        self.found: list[Finding] = []

    def add(self, kind: str, layer: Layer, entries: list[FileEntry], cause: str, fix: str) -> None:
        paths, wasted, count = _largest(entries)
        if wasted <= 0:
            return
        cause = cause.format(count=count, files="file" if count == 1 else "files", size=human_size(wasted))
        self.found.append(
            Finding(kind, layer.index, layer.dockerfile_line, layer.step, wasted, paths, count, cause, fix, layer.base)
        )

    def package_caches(self) -> None:
        """Whatever a layer writes under a cache ships with it, deleted later or not: one finding per cache and
        layer, however many folders it spans (a `__pycache__` in every package is one cause)."""
        for layer in self.layers:
            caches: dict[str, list[FileEntry]] = {}
            roots: dict[str, dict[str, int]] = {}
            patterns = {}
            for entry in layer.files.files():
                found = None if entry.is_dir else cache_root(entry.path)
                if found is not None:
                    pattern, root = found
                    patterns[pattern.label] = pattern
                    caches.setdefault(pattern.label, []).append(entry)
                    sizes = roots.setdefault(pattern.label, {})
                    sizes[root] = sizes.get(root, 0) + entry.size
            for label, entries in sorted(caches.items()):
                sizes = roots[label]
                largest_root = min(sizes, key=lambda root: (-sizes[root], root))
                place = "the base image's layer" if layer.base else "the layer"
                self.add(
                    "package-cache",
                    layer,
                    entries,
                    f"{label} left in {place}: {{count}} {{files}}, {{size}}, {_where(len(sizes), largest_root)}",
                    SLIMMER_BASE if layer.base else patterns[label].fix.format(root=largest_root),
                )

    def deleted_later(self, change: LayerChange) -> None:
        deleter = self.layers[change.index]
        by_origin: dict[int, list[FileEntry]] = {}
        for placed in change.deleted:
            if cache_root(placed.entry.path) is None:
                by_origin.setdefault(placed.layer, []).append(placed.entry)
        for origin, entries in sorted(by_origin.items()):
            source = self.layers[origin]
            if source.base:
                fix = SLIMMER_BASE if deleter.base else _BASE_DELETED
                added_by = f"the base image (layer {origin})"
            else:
                fix = (
                    f"delete them in the same RUN that creates them ({source.label}), or make them in a build stage "
                    "and COPY --from only what the image needs"
                    if _is_run(source)
                    else f"leave them out of what {source.label} copies (.dockerignore, or a narrower source path)"
                )
                added_by = source.label
            self.add(
                "deleted-later",
                source,
                entries,
                f"{{count}} {{files}} ({{size}}) added by {added_by} deleted by {deleter.label}: "
                f"the bytes still ship in layer {origin}",
                fix,
            )

    def metadata_copies(self, change: LayerChange) -> set[str]:
        """Files a layer copied only to change mode or owner; returns their paths (they are not "overwritten")."""
        deleter = self.layers[change.index]
        by_origin: dict[int, list[FileEntry]] = {}
        for placed in change.metadata_only:
            by_origin.setdefault(placed.layer, []).append(placed.entry)
        metadata_bytes = sum(placed.entry.size for placed in change.metadata_only)
        looks_like_chmod = (
            bool(_CHMOD_RE.search(deleter.created_by)) or 2 * metadata_bytes >= deleter.files.content_size
        )
        if not looks_like_chmod:
            return set()
        for origin, entries in sorted(by_origin.items()):
            source = self.layers[origin]
            target = f"the step that adds them ({source.label})"
            if deleter.base:
                fix = SLIMMER_BASE
            elif source.base:
                fix = _BASE_METADATA
            elif _is_run(source):
                fix = f"chmod/chown in {target} itself, in the same RUN"
            else:
                fix = f"set mode and owner where the files are added: COPY --chmod=... --chown=... in {target}"
            self.add(
                "metadata-copy",
                deleter,
                entries,
                f"{deleter.label} copies {{count}} unchanged {{files}} ({{size}}) into a new layer only to change "
                "mode or owner",
                fix,
            )
        return {placed.entry.path for placed in change.metadata_only}

    def overwritten(self, change: LayerChange, metadata_paths: set[str]) -> None:
        writer = self.layers[change.index]
        by_origin: dict[int, list[FileEntry]] = {}
        for placed in change.replaced:
            if placed.entry.path not in metadata_paths:
                by_origin.setdefault(placed.layer, []).append(placed.entry)
        for origin, entries in sorted(by_origin.items()):
            source = self.layers[origin]
            if writer.base:
                fix = SLIMMER_BASE
            elif source.base:
                fix = _BASE_OVERWRITTEN
            else:
                fix = f"produce the final version of these files in one step, or stop {source.label} from writing them"
            self.add(
                "overwritten",
                source,
                entries,
                f"{{count}} {{files}} ({{size}}) from {source.label} rewritten by {writer.label}: both copies ship",
                fix,
            )

    def build_only(self, final: Filesystem) -> None:
        """Large files under build-only paths that remain in the final image."""
        by_place: dict[tuple[int, str], list[FileEntry]] = {}
        for placed in final.files():
            entry = placed.entry
            if entry.is_dir or entry.size < LARGE_FILE or cache_root(entry.path) is not None:
                continue
            prefix = next((p for p in BUILD_ONLY_PREFIXES if entry.path.startswith(p + "/")), "")
            if prefix:
                by_place.setdefault((placed.layer, prefix), []).append(entry)
        for (index, prefix), entries in sorted(by_place.items()):
            layer = self.layers[index]
            self.add(
                "build-only",
                layer,
                entries,
                f"{{count}} large {{files}} ({{size}}) under the build-only path {prefix} ship in the image",
                SLIMMER_BASE
                if layer.base
                else "delete them in the same RUN, use RUN --mount=type=cache or type=tmpfs for them, or build in "
                "another stage and COPY --from only the result",
            )


def find(layers: Sequence[Layer], changes: Sequence[LayerChange], final: Filesystem) -> list[Finding]:
    findings = _Findings(layers)
    findings.package_caches()
    for change in changes:
        findings.deleted_later(change)
        findings.overwritten(change, findings.metadata_copies(change))
    findings.build_only(final)
    return sorted(findings.found, key=lambda finding: (-finding.wasted_bytes, finding.layer, finding.kind))


__all__ = ["SLIMMER_BASE", "Finding", "Placed", "find"]
