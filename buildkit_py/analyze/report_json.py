"""`analyze --format json`: dive's export schema (`cmd/dive/cli/internal/command/export/export.go`) plus our fields.

dive's keys keep dive's meaning: `layer[].sizeBytes` is the sum of the layer's tar header sizes, `fileList` holds
dive's FileInfo of every tree node (child first, by name), `image.inefficientBytes` and `efficiencyScore` come from
its efficiency walk, `fileReference` lists the inefficient paths largest first. Ours sit beside them under `pybuild`
(image level) and as extra layer keys (`dockerfileLine`, `step`, `author`, `message`, `tarSizeBytes`, `added`, `modified`, `removed`;
`author` and `message` are a commit's, empty for a build's layer).
"""

from __future__ import annotations

import json
import math
import stat
from typing import Any

from .analysis import ImageAnalysis
from .filetree import DIRECTORY, SYMLINK, FileEntry, Node, Tree

# Go's os.FileMode type bits, as archive/tar's FileInfo().Mode() sets them.
_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27
_GO_MODE_DEVICE = 1 << 26
_GO_MODE_NAMED_PIPE = 1 << 25
_GO_MODE_SETUID = 1 << 23
_GO_MODE_SETGID = 1 << 22
_GO_MODE_CHAR_DEVICE = 1 << 21
_GO_MODE_STICKY = 1 << 20


def go_file_mode(entry: FileEntry) -> int:
    mode = entry.mode & 0o777
    for bit, go_bit in (
        (stat.S_ISUID, _GO_MODE_SETUID),
        (stat.S_ISGID, _GO_MODE_SETGID),
        (stat.S_ISVTX, _GO_MODE_STICKY),
    ):
        if entry.mode & bit:
            mode |= go_bit
    mode |= {
        DIRECTORY: _GO_MODE_DIR,
        SYMLINK: _GO_MODE_SYMLINK,
        "3": _GO_MODE_DEVICE | _GO_MODE_CHAR_DEVICE,
        "4": _GO_MODE_DEVICE,
        "6": _GO_MODE_NAMED_PIPE,
    }.get(entry.type, 0)
    return mode


def file_info(node: Node) -> dict[str, Any]:
    """dive's FileInfo JSON; a node without a tar entry of its own is Go's zero FileInfo{}."""
    entry = node.entry
    if entry is None:
        return {"path": "", "typeFlag": 0, "linkName": "", "size": 0, "fileMode": 0, "uid": 0, "gid": 0, "isDir": False}
    return {
        "path": entry.path.lstrip("/"),
        "typeFlag": ord(entry.type[:1] or "\0"),
        "linkName": entry.linkname,
        "size": entry.size,
        "fileMode": go_file_mode(entry),
        "uid": entry.uid,
        "gid": entry.gid,
        "isDir": entry.is_dir,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def export(analysis: ImageAnalysis, file_lists: bool = True) -> dict[str, Any]:
    image = analysis.image
    result = analysis.efficiency
    layers = []
    for layer, change in zip(image.layers, analysis.changes, strict=True):
        file_list = [file_info(node) for node in Tree.from_layer(layer.files).nodes()] if file_lists else []
        layers.append(
            {
                "index": layer.index,
                "id": layer.diff_id.hex,
                "digestId": str(layer.diff_id),
                "sizeBytes": layer.files.content_size,
                "command": layer.created_by.removeprefix("/bin/sh -c "),
                "fileList": file_list,
                "dockerfileLine": layer.dockerfile_line,
                "step": layer.step,
                "author": layer.author,
                "message": layer.message,
                "tarSizeBytes": layer.tar_size,
                "added": {"count": change.added, "sizeBytes": change.added_bytes},
                "modified": {"count": change.modified, "sizeBytes": change.modified_bytes},
                "removed": {"count": change.removed, "sizeBytes": change.removed_bytes},
                "sizeByTopDir": dict(sorted(change.by_top_dir.items())),
            }
        )
    return {
        "layer": layers,
        "image": {
            "sizeBytes": result.size_bytes,
            "inefficientBytes": result.wasted_bytes,
            "efficiencyScore": result.score,
            "fileReference": [
                {"count": item.count, "sizeBytes": item.cumulative_size, "file": item.path}
                for item in result.inefficient
            ],
        },
        "pybuild": {
            "name": image.name,
            "imageId": str(image.image_id),
            "userSizeBytes": result.user_size_bytes,
            "baseLayers": image.base_layers,
            "excludedBaseLayers": analysis.excluded_base_layers,
            "userWastedRatio": _finite(result.wasted_user_percent),
            "reclaimableBytes": result.reclaimable_bytes,
            "deletedLaterBytes": sum(change.removed_bytes for change in analysis.changes),
            "largestFiles": [
                {"file": placed.entry.path, "sizeBytes": placed.entry.size, "layer": placed.layer}
                for placed in analysis.largest_files
            ],
            "largestDirs": [{"dir": path, "sizeBytes": size} for path, size in analysis.largest_dirs],
            "findings": [finding.to_json() for finding in analysis.findings],
        },
    }


def render(analysis: ImageAnalysis, file_lists: bool = True) -> str:
    return json.dumps(export(analysis, file_lists=file_lists), indent=2)
