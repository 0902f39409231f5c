"""The local store: blobs, snapshots and `meta.db` under one root, shared safely by concurrent `pybuild` processes.

    <root>/blobs/sha256/<hex>      layer tars (uncompressed, named by diff_id), image configs, compressed forms
    <root>/snapshots/<16 hex>      unpacked layers, used as overlay lowerdirs
    <root>/cache-mounts/<name>/    the folders of RUN --mount=type=cache (cachemounts.py)
    <root>/tmp/                    temp files and work dirs, named after their owner process
    <root>/meta.db                 every record, in one SQLite database with a versioned schema (schema.py)

The store keeps bytes and records and knows no image format. Each kind of record has its own narrow interface,
reached as an attribute (as dulwich keeps its object store apart from its refs):

    blobs        content-addressed files                 snapshots    unpacked layer folders
    layers       layer blobs, their rows and snapshots   images       image configs and the layer chains they name
    tags         names -> image ids                      cache        build cache records: key -> layer chain
    stat_cache   context path metadata -> digest         steps        the step log the miss explanations read
    forms        compressed forms of layers              registry     where blobs and manifests live in registries
    damage       what `system check` found damaged       containers   container records and their states
    volumes      named volumes (`<root>/volumes/<name>/_data`)
    downloads    what ADD downloaded: url -> blob, validators
    cache_mounts the folders of cache mounts         fingerprints what each project's last build read and made

Invariants, kept inside one SQLite write transaction each:
- an image, and a build cache record, only ever name layers that are recorded (and whose blob exists);
- a layer is deleted (row, blob, snapshot) only when no image and no cache record names it any more.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Self

from ..digest import Digest
from ..errors import ConflictError, ImageNotFound, InvalidDigest, StoreError
from ..reference import InvalidReference, parse_reference
from . import tempspace
from .content import ContentStore
from .damage import DamageRecords
from .database import Database
from .images import ImageStore
from .layers import LayerStore, remove_trash
from .locking import sweep_dead_owners
from .snapshots import SnapshotStore
from .tags import TagStore

if TYPE_CHECKING:
    from .cache import CacheStore
    from .cachemounts import CacheMountStore
    from .containers import ContainerRecords
    from .downloads import DownloadRecords
    from .fingerprints import FingerprintRecords
    from .forms import FormStore
    from .registry_records import RegistryRecords
    from .statcache import StatCache
    from .steplog import StepLogStore
    from .volumes import VolumeRecords

__all__ = ["MIN_ID_PREFIX", "Store", "default_root"]

MIN_ID_PREFIX = 4
_HEX = frozenset("0123456789abcdef")


def default_root() -> Path:
    """$PYBUILD_ROOT, else /var/lib/pybuild for root, else ~/.local/share/pybuild."""
    configured = os.environ.get("PYBUILD_ROOT")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/pybuild")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "pybuild"


def _prepare_root(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot use {root} as the store's root: {error.strerror or error}") from None
    if not root.is_dir():
        raise StoreError(f"cannot use {root} as the store's root: not a directory")


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        _prepare_root(self.root)
        self.tmp_dir = self.root / "tmp"
        self.blobs = ContentStore(self.root)
        self.snapshots = SnapshotStore(self.root)
        self.db = Database(self.root / "meta.db")
        self.damage = DamageRecords(self.db)
        self.layers = LayerStore(self.db, self.blobs, self.snapshots, self.damage)
        self.images = ImageStore(self.db, self.blobs, self.layers)
        self.tags = TagStore(self.db)
        sweep_dead_owners(self.tmp_dir)

    # The other records are made, and their modules imported, on first use: a command loads only what it touches.

    @cached_property
    def cache(self) -> CacheStore:
        from . import cache  # lazy: on first use, as said above

        return cache.CacheStore(self.db, self.layers)

    @cached_property
    def stat_cache(self) -> StatCache:
        from . import statcache  # lazy: on first use, as said above

        return statcache.StatCache(self.db)

    @cached_property
    def steps(self) -> StepLogStore:
        from . import steplog  # lazy: on first use, as said above

        return steplog.StepLogStore(self.db)

    @cached_property
    def forms(self) -> FormStore:
        from . import forms  # lazy: on first use, as said above

        return forms.FormStore(self.db, self.blobs)

    @cached_property
    def registry(self) -> RegistryRecords:
        from . import registry_records  # lazy: on first use, as said above

        return registry_records.RegistryRecords(self.db)

    @cached_property
    def fingerprints(self) -> FingerprintRecords:
        from . import fingerprints  # lazy: on first use, as said above

        return fingerprints.FingerprintRecords(self.db)

    @cached_property
    def containers(self) -> ContainerRecords:
        from . import containers  # lazy: on first use, as said above

        return containers.ContainerRecords(self.db)

    @cached_property
    def volumes(self) -> VolumeRecords:
        from . import volumes  # lazy: on first use, as said above

        return volumes.VolumeRecords(self.db, self.root)

    @cached_property
    def downloads(self) -> DownloadRecords:
        from . import downloads  # lazy: on first use, as said above

        return downloads.DownloadRecords(self.db, self.blobs)

    @cached_property
    def cache_mounts(self) -> CacheMountStore:
        from . import cachemounts  # lazy: on first use, as said above

        return cachemounts.CacheMountStore(self.db, self.root)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def temp_dir(self, prefix: str = "") -> Iterator[Path]:
        """A fresh folder under `<root>/tmp` (same filesystem as blobs and snapshots), removed on exit."""
        with tempspace.temp_dir(self.tmp_dir, prefix) as path:
            yield path

    @contextmanager
    def temp_path(self, prefix: str = "") -> Iterator[Path]:
        """A path for a temp file under `<root>/tmp`; removed on exit if it still exists."""
        with tempspace.temp_path(self.tmp_dir, prefix) as path:
            yield path

    # -- naming images: Docker's lookup order --------------------------------------------------------------------

    def resolve(self, name_or_id: str) -> Digest:
        """A tag (`name`, `name:tag`, `host:5000/a/b:tag`), a full id (`sha256:<hex>` or `<64 hex>`), or a unique
        id prefix of at least 4 hex digits, looked up in Docker's order. ImageNotFound: "No such image: NAME"."""
        return self.lookup(name_or_id)[0]

    def lookup(self, text: str) -> tuple[Digest, str | None]:
        """Like resolve: (image id, the tag it was found by, or None when `text` was taken as an id or id prefix)."""
        full_id = _full_id(text)
        if full_id is not None:
            if self.images.has(full_id):
                return full_id, None
            raise ImageNotFound(f"No such image: {text}")
        try:
            reference = parse_reference(text)
        except InvalidReference:
            reference = None
        if reference is not None and reference.digest is None:
            image_id = self.tags.get(reference.familiar)
            if image_id is not None:
                # Docker: text that is also a prefix of the image's id counts as an id (matters for rmi).
                by_id = image_id.hex.startswith(text.removeprefix("sha256:"))
                return image_id, None if by_id else reference.familiar
        prefix = text.removeprefix("sha256:")
        if len(prefix) >= MIN_ID_PREFIX and set(prefix) <= _HEX:
            found = self.images.ids_with_prefix(prefix)
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                raise ImageNotFound(f"No such image: {text} (the id prefix is ambiguous)")
        if reference is None:
            parse_reference(text)  # not a tag, not an id: say why the text is not a reference, as Docker does
        raise ImageNotFound(f"No such image: {text}")

    def remove_image(
        self, name_or_id: str, force: bool = False, has_children: Callable[[Digest], bool] | None = None
    ) -> list[str]:
        """`docker rmi`: a tag is untagged, and the image deleted once no tag is left; an id deletes the image after
        untagging all its tags, which needs `force` when there are several. An image `has_children` says other
        images were built on is never deleted, as Docker keeps it: its last tag is only untagged, and by id it is a
        ConflictError, forced or not. Returns Docker's report lines."""
        lines: list[str] = []
        image_id, tag_key = self.lookup(name_or_id)
        by_id = tag_key is None
        parent = has_children is not None and has_children(image_id)
        if parent and by_id:
            raise ConflictError(
                f"conflict: unable to delete {image_id.short} (cannot be forced) - image has dependent child images"
            )
        with self.db.write() as db:
            tags = [
                row[0] for row in db.execute("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (str(image_id),))
            ]
            user = db.execute(
                "SELECT container_id, state FROM containers WHERE image_id = ? ORDER BY state = 'running' DESC LIMIT 1",
                (str(image_id),),
            ).fetchone()
            if user is not None and not (not by_id and len(tags) > 1):
                # Docker: an image a container uses stays; with -f only its tags go (unless a container runs it).
                if not force or user[1] in ("running", "paused"):
                    what = f'repository reference "{name_or_id}"' if not by_id else image_id.short
                    state = "running" if user[1] in ("running", "paused") else "stopped"
                    raise ConflictError(
                        f"conflict: unable to {'remove' if not by_id else 'delete'} {what} "
                        f"({'must force' if state == 'stopped' else 'cannot be forced'}) - "
                        f"container {user[0][:12]} is using its referenced image {image_id.short}"
                    )
                for tag in tags:
                    db.execute("DELETE FROM tags WHERE name = ?", (tag,))
                    lines.append(f"Untagged: {tag}")
                return lines
            if not by_id and tag_key is not None:
                db.execute("DELETE FROM tags WHERE name = ? AND image_id = ?", (tag_key, str(image_id)))
                lines.append(f"Untagged: {tag_key}")
                if len(tags) > 1 or parent:
                    return lines
            else:
                if len(tags) > 1 and not force:
                    raise ConflictError(
                        f"conflict: unable to delete {image_id.short} (must be forced) - "
                        "image is referenced in multiple repositories"
                    )
                for tag in tags:
                    db.execute("DELETE FROM tags WHERE name = ?", (tag,))
                    lines.append(f"Untagged: {tag}")
            chain = self.images.delete_in(db, image_id)
            lines.append(f"Deleted: {image_id}")
            deleted_layers, trash = self.layers.collect(db, chain)
        remove_trash(trash)
        lines.extend(f"Deleted: {diff_id}" for diff_id in reversed(deleted_layers))
        return lines


def _full_id(text: str) -> Digest | None:
    """`sha256:<64 hex>` or bare `<64 hex>` as an image id; None for anything else."""
    candidate = text if text.startswith("sha256:") else f"sha256:{text}"
    try:
        digest = Digest.parse(candidate)
    except InvalidDigest:
        return None
    return digest if digest.algorithm == "sha256" else None
