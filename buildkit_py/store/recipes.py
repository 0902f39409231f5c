"""A blob kept as a recipe instead of as bytes: literal pieces, and pieces that are the content of files in a snapshot.

A layer's tar is mostly the content of the files its snapshot already holds; the rest is headers and padding. So a
layer is stored once, as its snapshot, plus a recipe that rebuilds the tar byte for byte from it (what Docker's
tar-split keeps). The store knows nothing of tar here: whoever writes a recipe (buildkit_py.layer) knows the format,
and a recipe is only kept when rebuilding from it was checked to give the layer's exact bytes. Reading one back is
verified like any blob: the bytes must hash to the layer's digest by the time the last one is read.

A recipe is zstd-compressed; uncompressed it is a magic line, then records, then an end mark:

    b"L" u32 n <n literal bytes>
    b"F" u16 n <n bytes: a path relative to the snapshot> u64 size     (that file's first `size` bytes)
    b"E"
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..digest import CHUNK_SIZE, Digest, new_hasher
from ..errors import DigestMismatch, StoreError

__all__ = ["RecipeReader", "RecipeWriter"]

_MAGIC = b"pybuild-recipe 1\n"
_LITERAL = struct.Struct("!I")
_NAME = struct.Struct("!H")
_SIZE = struct.Struct("!Q")
_MAX_LITERAL = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RecipeWriter:
    """Collects a recipe; `literal` and `file` in the order of the blob's bytes, then `finish`. The records are
    compressed as they come, so a layer of many small files (a header and padding for each) is never held whole."""

    def __init__(self) -> None:
        import zstandard  # loaded by the builds and reads that use recipes, not by every command that opens a store

        self._compressor = zstandard.ZstdCompressor(level=3).compressobj()
        self._compressed = bytearray()
        self._records = bytearray(_MAGIC)
        self._pending = bytearray()

    def literal(self, data: bytes | bytearray | memoryview) -> None:
        self._pending += data
        if len(self._pending) >= _MAX_LITERAL:
            self._flush()

    def _flush(self) -> None:
        view = memoryview(bytes(self._pending))
        while view:
            piece = view[:_MAX_LITERAL]
            self._records += b"L" + _LITERAL.pack(len(piece)) + piece
            view = view[len(piece) :]
        self._pending.clear()
        if len(self._records) >= _MAX_LITERAL:
            self._compressed += self._compressor.compress(bytes(self._records))
            self._records.clear()

    def file(self, relpath: bytes, size: int) -> None:
        if not relpath or relpath.startswith(b"/") or len(relpath) > 0xFFFF:
            raise StoreError(f"a recipe cannot name the file {relpath!r}")
        self._flush()
        self._records += b"F" + _NAME.pack(len(relpath)) + relpath + _SIZE.pack(size)

    def finish(self) -> bytes:
        self._flush()
        self._records += b"E"
        self._compressed += self._compressor.compress(bytes(self._records))
        self._compressed += self._compressor.flush()
        self._records.clear()
        return bytes(self._compressed)


def _records(recipe: bytes) -> Iterator[tuple[bytes, bytes | None, int]]:
    """(literal, None, 0) or (b"", relpath, size) per record."""
    import zstandard  # lazy: as in RecipeWriter

    try:
        data = zstandard.ZstdDecompressor().decompress(recipe, max_output_size=1 << 31)
    except zstandard.ZstdError as error:
        raise StoreError(f"a layer recipe is damaged: {error}") from None
    if not data.startswith(_MAGIC):
        raise StoreError("a layer recipe is damaged: unknown format")
    view = memoryview(data)
    position = len(_MAGIC)
    try:
        while True:
            kind = bytes(view[position : position + 1])
            position += 1
            if kind == b"L":
                (length,) = _LITERAL.unpack_from(view, position)
                position += _LITERAL.size
                yield bytes(view[position : position + length]), None, 0
                position += length
            elif kind == b"F":
                (length,) = _NAME.unpack_from(view, position)
                position += _NAME.size
                name = bytes(view[position : position + length])
                position += length
                (size,) = _SIZE.unpack_from(view, position)
                position += _SIZE.size
                yield b"", name, size
            elif kind == b"E":
                return
            else:
                raise StoreError("a layer recipe is damaged: unknown record")
    except struct.error:
        raise StoreError("a layer recipe is damaged: truncated") from None


def _open_in(snapshot_fd: int, relpath: bytes) -> int:
    """Open a file of the snapshot without following any symlink on the way: a snapshot holds hostile content."""
    parts = [part for part in relpath.split(b"/") if part not in (b"", b".")]
    if not parts or b".." in parts:
        raise StoreError(f"a layer recipe names a path outside its snapshot: {relpath!r}")
    fd = os.dup(snapshot_fd)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


class RecipeReader(io.RawIOBase):
    """The blob a recipe describes, rebuilt from `snapshot`; DigestMismatch (or StoreError for a size that does not
    match) when the last byte has been read and the bytes are not `digest`. Seeking forward reads and discards;
    seeking back starts over; either ends the verification, as for a stored blob."""

    def __init__(self, recipe: bytes, snapshot: Path, digest: Digest, size: int) -> None:
        super().__init__()
        self._recipe = recipe
        self._snapshot = snapshot
        self._digest = digest
        self._size = size
        self._verify = True
        self._start()

    def _start(self) -> None:
        self._pieces = self._pieces_of()
        self._current: BinaryIO | memoryview | None = None
        self._left = 0
        self._position = 0
        self._hasher = new_hasher(self._digest.algorithm)

    def _pieces_of(self) -> Iterator[tuple[bytes, bytes | None, int]]:
        yield from _records(self._recipe)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def _next_piece(self) -> bool:
        if isinstance(self._current, io.IOBase):
            self._current.close()
        self._current = None
        for literal, name, size in self._pieces:
            if name is None:
                if literal:
                    self._current, self._left = memoryview(literal), len(literal)
                    return True
                continue
            if size == 0:
                continue
            snapshot_fd = os.open(self._snapshot, _DIR_FLAGS)
            try:
                fd = _open_in(snapshot_fd, name)
            except OSError as error:
                raise StoreError(f"layer {self._digest}: {name!r} is missing from its snapshot: {error}") from None
            finally:
                os.close(snapshot_fd)
            self._current, self._left = os.fdopen(fd, "rb", buffering=0), size
            return True
        return False

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fills `buffer` across pieces (readers such as tarfile take a short read for the end of the data)."""
        view = memoryview(buffer).cast("B")  # a slice of a bytearray would be a copy
        filled = 0
        while filled < len(view):
            count = self._read_piece(view[filled:])
            if not count:
                break
            filled += count
        return filled

    def _read_piece(self, view: memoryview) -> int:
        while self._left == 0:
            if not self._next_piece():
                self._finish()
                return 0
        want = min(len(view), self._left)
        if isinstance(self._current, memoryview):
            offset = len(self._current) - self._left
            view[:want] = self._current[offset : offset + want]
            count = want
        else:
            assert self._current is not None
            count = self._current.readinto(view[:want])  # type: ignore[attr-defined]
            if not count:
                raise DigestMismatch(f"layer {self._digest}: a file of its snapshot is shorter than its layer says")
        self._left -= count
        self._position += count
        if self._verify:
            self._hasher.update(view[:count])
        return count

    def _finish(self) -> None:
        if not self._verify:
            return
        self._verify = False
        if self._position != self._size:
            raise StoreError(f"layer {self._digest} rebuilds to {self._position} bytes, not {self._size}")
        if self._hasher.hexdigest() != self._digest.hex:
            raise DigestMismatch(
                f"layer {self._digest} is corrupt: its snapshot rebuilds to "
                f"{self._digest.algorithm}:{self._hasher.hexdigest()}"
            )

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._position + offset}.get(whence)
        if target is None or target < 0:
            raise OSError("a layer rebuilt from its snapshot seeks only from its start or its current position")
        if target == self._position:
            return target
        self._verify = False
        if target < self._position:
            if isinstance(self._current, io.IOBase):
                self._current.close()
            self._start()
            self._verify = False
        scratch = bytearray(CHUNK_SIZE)
        while self._position < target:
            count = self.readinto(memoryview(scratch)[: min(CHUNK_SIZE, target - self._position)])
            if not count:
                break
        return self._position

    def close(self) -> None:
        if isinstance(self._current, io.IOBase):
            self._current.close()
        self._current = None
        super().close()
