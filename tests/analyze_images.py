"""Images with known waste, written straight into a real Store from layer tars made here (used by the analyze tests)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from buildkit_py.digest import Digest
from buildkit_py.image.config import HistoryEntry, ImageConfig
from buildkit_py.image.stored import put_image
from buildkit_py.store import Store

MTIME = 1_700_000_000
TEN_MB = 10_000_000


@dataclass(frozen=True)
class F:
    """A tar entry: a file of `size` zero bytes (or `data`), a directory when path ends with "/"."""

    path: str
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    data: bytes | None = None
    link: str = ""


def layer_tar(entries: Sequence[F]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for spec in entries:
            info = tarfile.TarInfo(spec.path.rstrip("/"))
            info.mtime = MTIME
            info.mode = spec.mode
            info.uid = spec.uid
            if spec.path.endswith("/"):
                info.type = tarfile.DIRTYPE
                info.mode = spec.mode if spec.mode != 0o644 else 0o755
                archive.addfile(info)
            elif spec.link:
                info.type = tarfile.SYMTYPE
                info.linkname = spec.link
                archive.addfile(info)
            else:
                data = spec.data if spec.data is not None else bytes(spec.size)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def put_layer(store: Store, tar: bytes) -> Digest:
    diff_id = Digest("sha256", hashlib.sha256(tar).hexdigest())
    with store.temp_path("layer") as path:
        Path(path).write_bytes(tar)
        store.layers.commit(path, diff_id, len(tar))
    return diff_id


def make_image(store: Store, name: str, steps: Sequence[tuple[str, Sequence[F] | None]]) -> Digest:
    """Each step is (Dockerfile instruction, entries); entries None is a step without a layer (ENV, CMD...).

    History is written as pybuild's builder writes it: BuildKit's created_by and `buildkit_py: Dockerfile:N`."""
    diff_ids = []
    history = []
    for line, (instruction, entries) in enumerate(steps, start=1):
        if instruction.startswith("RUN "):
            created_by = f"RUN /bin/sh -c {instruction[4:]} # buildkit"
        else:
            created_by = f"{instruction} # buildkit"
        history.append(
            HistoryEntry(
                created=f"2024-01-01T00:00:{line:02d}Z",
                created_by=created_by,
                empty_layer=entries is None,
                comment=f"buildkit_py: Dockerfile:{line}",
            )
        )
        if entries is not None:
            diff_ids.append(put_layer(store, layer_tar(entries)))
    config = ImageConfig(diff_ids=tuple(diff_ids), history=tuple(history), created="2024-01-01T00:00:00Z")
    image_id = put_image(store, config)
    store.tags.set(name, image_id)
    return image_id


BASE = ("COPY busybox /bin/busybox", [F("bin/"), F("bin/busybox", 1000, 0o755)])

# A 10 MB file made in one RUN and deleted in the next.
DELETED = [BASE, ("RUN dd if=/dev/zero of=/big bs=1M count=10", [F("big", TEN_MB)]), ("RUN rm /big", [F(".wh.big")])]

# COPY adds /app, then a RUN chmod copies both files again only to change their mode.
CHMOD = [
    BASE,
    ("COPY app /app", [F("app/"), F("app/a", 3000), F("app/b", 2000)]),
    ("RUN chmod -R 755 /app", [F("app/"), F("app/a", 3000, 0o755), F("app/b", 2000, 0o755)]),
    ('CMD ["/app/a"]', None),
]

# apt-get update leaves its lists; a later RUN deletes the whole directory (dive does not see that as waste).
APT = [
    BASE,
    (
        "RUN apt-get update && apt-get install -y tool",
        [
            F("usr/"),
            F("usr/bin/"),
            F("usr/bin/tool", 5000, 0o755),
            F("var/"),
            F("var/lib/"),
            F("var/lib/apt/"),
            F("var/lib/apt/lists/"),
            F("var/lib/apt/lists/deb.debian.org_Packages", 40000),
            F("var/lib/apt/lists/lock"),
            F("var/lib/apt/lists/partial/"),
        ],
    ),
    ("RUN rm -rf /var/lib/apt/lists", [F("var/lib/apt/"), F("var/lib/apt/.wh.lists")]),
]

# The same config file written by two layers.
TWICE = [
    BASE,
    ("COPY app.conf /etc/app.conf", [F("etc/"), F("etc/app.conf", 100)]),
    ("RUN sed -i s/a/b/ /etc/app.conf", [F("etc/"), F("etc/app.conf", 150)]),
]
