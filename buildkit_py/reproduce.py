"""`pybuild build --verify`: build again without the cache and say where the two images part, if they do.

The image config is compared field by field (in the order the config is written), then the layers one by one, and
in the first layer that differs, its tar entries in order: name, type, mode, owner, time, size, link target, content
and extended attributes. The first field and the first file that differ are named."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .digest import CHUNK_SIZE, Digest
from .image.config import ImageConfig
from .store import Store

__all__ = ["Verification", "compare_images", "first_field_difference"]


@dataclass(frozen=True)
class Verification:
    """The two images' ids, and where they first differ (empty when they are the same)."""

    first: Digest
    second: Digest
    field: str = ""
    file: str = ""

    @property
    def reproducible(self) -> bool:
        return self.first == self.second

    def __str__(self) -> str:
        if self.reproducible:
            return f"reproducible: a rebuild without the cache gave the same image {self.first}"
        parts = [f"not reproducible: a rebuild without the cache gave {self.second}, not {self.first}"]
        if self.field:
            parts.append(f"first differing config field: {self.field}")
        if self.file:
            parts.append(f"first differing file: {self.file}")
        return "\n".join(parts)


def first_field_difference(first: Any, second: Any, path: str = "") -> str:
    """The path of the first value that differs (`created`, `history[3].created`), with both values; "" if none."""
    if isinstance(first, dict) and isinstance(second, dict):
        for key in list(first) + [key for key in second if key not in first]:
            found = first_field_difference(first.get(key), second.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return ""
    if isinstance(first, list) and isinstance(second, list):
        for index in range(max(len(first), len(second))):
            a = first[index] if index < len(first) else None
            b = second[index] if index < len(second) else None
            found = first_field_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return ""
    if first != second:
        return f"{path}: {json.dumps(first)} != {json.dumps(second)}"
    return ""


@dataclass(frozen=True)
class _Entry:
    name: str
    fields: tuple[tuple[str, object], ...]


def _entries(store: Store, diff_id: Digest) -> Iterator[_Entry]:
    with store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            content = ""
            if member.isreg():
                extracted = archive.extractfile(member)
                hasher = hashlib.sha256()
                if extracted is not None:
                    while chunk := extracted.read(CHUNK_SIZE):
                        hasher.update(chunk)
                content = hasher.hexdigest()
            xattrs = tuple(sorted((k, v) for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr.")))
            yield _Entry(
                member.name,
                (
                    ("type", member.type.decode(errors="replace")),
                    ("mode", oct(member.mode)),
                    ("owner", f"{member.uid}:{member.gid}"),
                    ("mtime", int(member.mtime)),
                    ("size", member.size),
                    ("link target", member.linkname),
                    ("content", content),
                    ("xattrs", xattrs),
                ),
            )


def _layer_difference(store: Store, first: Digest, second: Digest) -> str:
    old, new = _entries(store, first), _entries(store, second)
    while True:
        a, b = next(old, None), next(new, None)
        if a is None and b is None:
            return "the layers differ in their tar headers only"
        if a is None or b is None or a.name != b.name:
            names = sorted(entry.name for entry in (a, b) if entry is not None)
            return f"/{names[0]}: in one image only"
        for (label, value), (_, other) in zip(a.fields, b.fields, strict=True):
            if value != other:
                return f"/{a.name}: {label} {value} != {other}"


def compare_images(
    store: Store, first: ImageConfig, first_id: Digest, second: ImageConfig, second_id: Digest
) -> Verification:
    """Where the image `first` (stored) and the image `second` (a rebuild) part, if they do."""
    if first_id == second_id:
        return Verification(first_id, second_id)
    first_json, second_json = first.to_json(), second.to_json()
    first_json.pop("rootfs", None)
    second_json.pop("rootfs", None)
    field = first_field_difference(first_json, second_json)
    file = ""
    layer_names = [entry.created_by for entry in first.history if not entry.empty_layer][-len(first.diff_ids) :]
    for index, (a, b) in enumerate(zip(first.diff_ids, second.diff_ids)):
        if a != b:
            step = layer_names[index] if index < len(layer_names) else ""
            file = f"layer {index + 1} ({step}): {_layer_difference(store, a, b)}"
            break
    else:
        if len(first.diff_ids) != len(second.diff_ids):
            file = f"the images have {len(first.diff_ids)} and {len(second.diff_ids)} layers"
    return Verification(first_id, second_id, field, file)
