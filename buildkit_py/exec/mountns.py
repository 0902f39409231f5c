"""Mount namespaces of ours: private from the host's, and rid of other engines' overlay mounts.

A new mount namespace starts with a copy of every mount of the host's, and a copy that still shares propagation with
the host's mounts passes its unmounts on to them: every namespace of ours makes all its mounts private first
(`private_mount_namespace`). Among the copies are Docker's and podman's container roots
(`/var/lib/docker/overlay2/<id>/merged`). While a copy lives, the overlay stays mounted there after its engine
unmounts it, its upper folder stays "in use", and the engine's next mount of that folder as a lower of a new layer is
what overlayfs calls undefined behaviour. A sandbox or a container monitor of ours can live for minutes, so right
after it unshares it detaches every overlay it does not need (`release_foreign_overlays`): the overlays that hold
none of the paths it works with. This changes nothing outside the namespace.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path, PurePath

from . import syscalls as sc


@dataclasses.dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fstype: str


def private_mount_namespace(flags: int = sc.CLONE_NEWNS) -> None:
    """Unshare into new namespaces (`flags`, a mount namespace among them) and make every mount private: what this
    process mounts or unmounts from here on never reaches the host, nor the host's reaches it."""
    sc.unshare(flags)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in a path as octal escapes (\\040 ...)."""
    if "\\" not in field:
        return field
    out, index = [], 0
    while index < len(field):
        if field[index] == "\\" and field[index + 1 : index + 4].isdigit():
            out.append(chr(int(field[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        entries.append(MountEntry(_unescape(fields[4]), fields[separator + 1]))
    return entries


def paths_in(value: object) -> set[str]:
    """Every absolute path held by `value`: Paths and strings starting with "/", in dataclasses, tuples, lists,
    dicts and sets, however deep."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, PurePath):
            found.add(os.path.abspath(item))
        elif isinstance(item, str):
            if item.startswith("/"):
                found.add(os.path.abspath(item))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, field.name) for field in dataclasses.fields(item))
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (tuple, list, set, frozenset)):
            stack.extend(item)
    return found


def _holds(mount_point: str, path: str) -> bool:
    return mount_point == "/" or path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def foreign_overlays(entries: Iterable[MountEntry], needed: Iterable[str]) -> list[str]:
    """The overlay mount points that hold none of the `needed` paths (never "/"), deepest first."""
    needed = list(needed)
    doomed = {
        entry.mount_point
        for entry in entries
        if entry.fstype == "overlay" and not any(_holds(entry.mount_point, path) for path in needed)
    }
    return sorted(doomed, key=lambda point: point.count("/"), reverse=True)


def release_foreign_overlays(*holders: object) -> None:
    """In a private mount namespace of ours (never the host's): detach every overlay mount that holds no path of
    `holders` (see `paths_in`) nor the working directory."""
    needed = paths_in(holders) | {os.getcwd()}
    text = Path("/proc/self/mountinfo").read_text(errors="surrogateescape")
    for mount_point in foreign_overlays(parse_mountinfo(text), needed):
        try:
            sc.umount2(mount_point, sc.MNT_DETACH)
        except OSError:
            pass  # gone with an overlay above it, or unmounted meanwhile
