"""Taking images in from archives someone else made, which are hostile input.

An archive (a tar stream, or an OCI layout folder) is read through an `ArchiveSource`: files by their name inside
the archive, never by a path built from a name. A tar is staged first: each regular member is copied to a numbered
temp file under `<root>/tmp` (its name is only a key in a dict, so no member name reaches the filesystem), names
are checked (no absolute paths, no `..`, no duplicates), and links between members resolve inside the archive only.
A folder is read with O_NOFOLLOW at every step and only regular files are opened.

Loading is two phases. `IngestBatch.add_layer` unpacks every layer into temp space (unpack_layer, which is safe
against traversal, symlink and hard link escapes) while keeping its uncompressed tar, and checks its diff_id;
`commit` then moves layers, configs and tags into the store. A load that fails in the first phase leaves nothing in
the store, no tag and no snapshot.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from ..digest import CHUNK_SIZE, Digest
from ..errors import DigestMismatch, InvalidDigest, LayerError, StoreError
from ..fs.beneath import open_beneath
from ..layer.compression import open_decompressed
from ..layer.tarsplit import commit_unpacked_layer
from ..layer.unpack import unpack_layer
from .config import ImageConfig
from .stored import put_image_bytes

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "ArchiveSource",
    "IngestBatch",
    "LayoutDir",
    "StagedTar",
    "clean_member_name",
    "open_source",
    "read_small",
]

MAX_METADATA_SIZE = 32 << 20  # manifests, configs, index.json: anything larger is not one
_MAX_LINK_HOPS = 16
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clean_member_name(name: str) -> str:
    """An archive member's name as a key: `./` and empty parts dropped. StoreError for an absolute name, a `..`
    component or an empty name: no archive we read needs one, and they are how archives try to escape."""
    if name.startswith("/"):
        raise StoreError(f"archive member {name!r} has an absolute name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise StoreError(f"archive member name {name!r} is empty or climbs out of the archive")
    return "/".join(parts)


class ArchiveSource(Protocol):
    """Files of an archive, by name."""

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def open(self, name: str) -> BinaryIO: ...


def read_small(source: ArchiveSource, name: str, limit: int = MAX_METADATA_SIZE) -> bytes:
    if source.size(name) > limit:
        raise StoreError(f"archive file {name} is too large ({source.size(name)} bytes) for what it should hold")
    with source.open(name) as stream:
        return stream.read(limit + 1)[:limit]


class StagedTar:
    """A tar archive's regular files, copied to temp files under `work`; links resolved by name within the archive."""

    def __init__(self, stream: BinaryIO, work: Path) -> None:
        self._work = work
        self._files: dict[str, Path] = {}
        self._links: dict[str, str] = {}
        try:
            archive = tarfile.open(fileobj=open_decompressed(stream), mode="r|", bufsize=CHUNK_SIZE)  # noqa: SIM115
        except tarfile.ReadError as error:
            raise StoreError(f"not a tar archive: {error}") from None
        try:
            with archive:
                for number, member in enumerate(archive):
                    self._add(number, member, archive)
                    archive.members.clear()  # type: ignore[attr-defined]
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise StoreError(f"archive is corrupt or truncated: {error}") from None

    def _add(self, number: int, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        name = clean_member_name(member.name)
        if member.isdir():
            if name in self._files or name in self._links:
                raise StoreError(f"archive member {name!r} appears twice")
            return
        if name in self._files or name in self._links:
            raise StoreError(f"archive member {name!r} appears twice")
        if member.issym():
            target = (
                member.linkname if member.linkname.startswith("/") else f"{name.rpartition('/')[0]}/{member.linkname}"
            )
            self._links[name] = _lexical(target, name)
        elif member.islnk():
            self._links[name] = clean_member_name(member.linkname)
        elif member.isreg():
            path = self._work / f"member-{number}"
            source = archive.extractfile(member)
            assert source is not None
            with source, open(path, "wb") as out:
                while chunk := source.read(CHUNK_SIZE):
                    out.write(chunk)
            self._files[name] = path
        # Devices, fifos and the like have no place in an image archive; they are ignored, never created.

    def _resolve(self, name: str) -> Path:
        key = clean_member_name(name)
        for _ in range(_MAX_LINK_HOPS):
            if key in self._files:
                return self._files[key]
            if key not in self._links:
                raise StoreError(f"archive has no file {name}")
            key = self._links[key]
        raise StoreError(f"archive file {name} is a loop of links")

    def exists(self, name: str) -> bool:
        try:
            self._resolve(name)
        except StoreError:
            return False
        return True

    def size(self, name: str) -> int:
        return self._resolve(name).stat().st_size

    def open(self, name: str) -> BinaryIO:
        return open(self._resolve(name), "rb")


def _lexical(target: str, name: str) -> str:
    """A symlink member's target as a member name (absolute targets count from the archive root)."""
    parts: list[str] = []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise StoreError(f"archive member {name!r} links outside the archive")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise StoreError(f"archive member {name!r} links to the archive root")
    return "/".join(parts)


class LayoutDir:
    """Files of a folder (an OCI image layout), opened without following any symlink."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _open_fd(self, name: str) -> int:
        relpath = clean_member_name(name)
        fd = -1
        try:
            fd = os.open(self.root, _DIR_FLAGS)
            file_fd = open_beneath(fd, relpath, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StoreError(f"{name} in {self.root} is reached through a symlink, which a layout may not use")
            if error.errno == errno.ENOENT:
                raise StoreError(f"{self.root} has no file {name}") from None
            raise
        finally:
            if fd >= 0:
                os.close(fd)
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            os.close(file_fd)
            raise StoreError(f"{name} in {self.root} is not a regular file")
        os.set_blocking(file_fd, True)
        return file_fd

    def exists(self, name: str) -> bool:
        try:
            os.close(self._open_fd(name))
        except StoreError:
            return False
        return True

    def size(self, name: str) -> int:
        fd = self._open_fd(name)
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def open(self, name: str) -> BinaryIO:
        return os.fdopen(self._open_fd(name), "rb")


@contextmanager
def open_source(store: Store, source: Path | BinaryIO) -> Iterator[ArchiveSource]:
    """A folder as a LayoutDir; a file or a stream staged as a StagedTar (temp space removed on exit)."""
    if isinstance(source, Path) and source.is_dir():
        yield LayoutDir(source)
        return
    with ExitStack() as stack:
        work = stack.enter_context(store.temp_dir("stage"))
        stream: BinaryIO = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
        yield StagedTar(stream, work)


def verify_file(source: ArchiveSource, name: str, digest: Digest, size: int | None = None) -> None:
    """The file's sha256 (or sha512) and size must be the descriptor's."""
    if digest.algorithm not in ("sha256", "sha512"):
        raise InvalidDigest(f"unsupported digest algorithm in {name}: {digest}")
    actual_size = source.size(name)
    if size is not None and actual_size != size:
        raise DigestMismatch(f"{name} is {actual_size} bytes, but its descriptor says {size}")
    hasher = hashlib.new(digest.algorithm)
    with source.open(name) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            hasher.update(chunk)
    if hasher.hexdigest() != digest.hex:
        raise DigestMismatch(f"{name} hashes to {digest.algorithm}:{hasher.hexdigest()}, not {digest}")


class _TeeReader(io.RawIOBase):
    """Reads the uncompressed layer for unpack_layer while keeping a copy of every byte in a file."""

    def __init__(self, source: BinaryIO, copy: BinaryIO) -> None:
        super().__init__()
        self._source = source
        self._copy = copy

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self._copy.write(data)
        return count


@dataclass
class _PreparedLayer:
    diff_id: Digest
    tar_path: Path
    size: int
    snapshot: Path


@dataclass
class _PreparedImage:
    config_bytes: bytes
    tags: list[str]


@dataclass
class IngestBatch:
    """Layers and images prepared in temp space, then committed together."""

    store: Store
    work: Path
    layers: dict[Digest, _PreparedLayer] = field(default_factory=dict)
    images: list[_PreparedImage] = field(default_factory=list)
    image_ids: list[Digest] = field(default_factory=list)
    _count: int = 0

    def add_layer(self, source: ArchiveSource, name: str, diff_id: Digest) -> None:
        """Unpack the layer file `name` (any compression) into temp space; DigestMismatch unless its uncompressed
        tar hashes to `diff_id`. A layer the store or this batch has already is skipped."""
        if diff_id in self.layers or self.store.layers.has(diff_id):
            return
        with source.open(name) as stream:
            layer = self._unpack(stream, name)
        if layer.diff_id != diff_id:
            raise DigestMismatch(f"layer {name} unpacks to {layer.diff_id}, but the image config says {diff_id}")
        self.layers[diff_id] = layer

    def add_layer_stream(self, stream: BinaryIO, label: str) -> Digest:
        """Unpack a layer whose diff_id is not known beforehand (an imported rootfs); returns it."""
        layer = self._unpack(stream, label)
        if layer.diff_id not in self.layers and not self.store.layers.has(layer.diff_id):
            self.layers[layer.diff_id] = layer
        return layer.diff_id

    def _unpack(self, stream: BinaryIO, label: str) -> _PreparedLayer:
        number = self._count
        self._count += 1
        tar_path = self.work / f"layer-{number}.tar"
        snapshot = self.work / f"snapshot-{number}"
        snapshot.mkdir()
        with open(tar_path, "wb") as copy:
            try:
                tee = io.BufferedReader(_TeeReader(open_decompressed(stream), copy), CHUNK_SIZE)
                info = unpack_layer(cast(BinaryIO, tee), snapshot)
            except (OSError, EOFError) as error:
                raise LayerError(f"layer {label} cannot be read: {error}") from error
        return _PreparedLayer(info.diff_id, tar_path, info.size, snapshot)

    def add_image(self, config_bytes: bytes, tags: list[str]) -> None:
        self.images.append(_PreparedImage(config_bytes, tags))

    def commit(self) -> list[str]:
        """Layers, then configs, then tags. Returns the tags, and the id of each image that has none."""

        for layer in self.layers.values():
            commit_unpacked_layer(self.store, layer.tar_path, layer.diff_id, layer.size, layer.snapshot)
        loaded: list[str] = []
        for image in self.images:
            image_id = put_image_bytes(self.store, image.config_bytes)
            self.image_ids.append(image_id)
            for tag in image.tags:
                self.store.tags.set(tag, image_id)
                loaded.append(tag)
            if not image.tags:
                loaded.append(str(image_id))
        return loaded


def parse_config(data: bytes, where: str) -> tuple[Digest, tuple[Digest, ...]]:
    """An image config's id (sha256 of its bytes) and diff_ids; StoreError when it is not a valid config."""
    try:
        config = ImageConfig.from_bytes(data)
    except (ValueError, TypeError, AttributeError, KeyError, InvalidDigest) as error:
        raise StoreError(f"{where} is not a valid image config: {error}") from None
    if any(diff_id.algorithm != "sha256" for diff_id in config.diff_ids):
        raise StoreError(f"{where} names a layer by a digest that is not sha256")
    return Digest("sha256", hashlib.sha256(data).hexdigest()), config.diff_ids
