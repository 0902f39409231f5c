"""Layer compression: detect it by magic bytes, undo it as a stream, apply gzip or zstd as a stream."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from typing import BinaryIO, cast

import zstandard

from ..errors import LayerError

__all__ = ["COMPRESSIONS", "compress_stream", "detect_compression", "open_decompressed"]

COMPRESSIONS = ("gzip", "zstd", "uncompressed")
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_HEAD_SIZE = 6
_CHUNK = 1 << 20
# Go's compress/gzip default, as BuildKit and Docker use: level 9 costs several times the CPU for ~1% smaller blobs.
_GZIP_LEVEL = 6
_ZSTD_LEVEL = 3


def detect_compression(head: bytes) -> str:
    """ "gzip", "zstd", "bzip2", "xz", or "uncompressed" for anything else (the tar parser judges the rest)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "uncompressed"


class _Replay(io.RawIOBase):
    """The bytes already read to sniff the format, then the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ZstdReader(io.RawIOBase):
    """zstd frames one after another, failing on a frame cut short (zstandard's stream_reader just ends there)."""

    _INPUT_CHUNK = 1 << 17  # small input steps bound the memory a highly compressed frame can expand into

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._context = zstandard.ZstdDecompressor()
        self._frame = self._context.decompressobj()
        self._in_frame = False
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            data = self._source.read(self._INPUT_CHUNK)
            if not data:
                if self._in_frame:
                    raise LayerError("zstd layer is truncated: the stream ends inside a frame")
                return 0
            self._feed(data)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _feed(self, data: bytes) -> None:
        output = []
        while data:
            if self._frame.eof:
                self._frame = self._context.decompressobj()
            self._in_frame = True
            output.append(self._frame.decompress(data))
            data = self._frame.unused_data if self._frame.eof else b""
        if self._frame.eof:
            self._in_frame = False
        self._pending = memoryview(b"".join(output))


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """A stream of the tar inside stream, whatever the compression. Errors of a corrupt compressed stream surface
    while reading (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError)."""
    head = b""
    while len(head) < _HEAD_SIZE:
        more = stream.read(_HEAD_SIZE - len(head))
        if not more:
            break
        head += more
    replay = cast(BinaryIO, io.BufferedReader(_Replay(head, stream), _CHUNK))
    algorithm = detect_compression(head)
    if algorithm == "gzip":
        return cast(BinaryIO, gzip.GzipFile(fileobj=replay, mode="rb"))
    if algorithm == "zstd":
        return cast(BinaryIO, io.BufferedReader(_ZstdReader(replay), _CHUNK))
    if algorithm == "bzip2":
        return cast(BinaryIO, bz2.BZ2File(replay, mode="rb"))
    if algorithm == "xz":
        return cast(BinaryIO, lzma.LZMAFile(replay, mode="rb"))
    return replay


def compress_stream(src: BinaryIO, dst: BinaryIO, algorithm: str) -> None:
    """Copy src to dst compressed with algorithm ("gzip", "zstd" or "uncompressed"). Output is deterministic: the
    gzip header carries no name and mtime 0."""
    if algorithm == "gzip":
        with gzip.GzipFile(filename="", mode="wb", compresslevel=_GZIP_LEVEL, fileobj=dst, mtime=0) as gz:
            _copy(src, gz)
    elif algorithm == "zstd":
        with zstandard.ZstdCompressor(level=_ZSTD_LEVEL).stream_writer(dst, closefd=False) as zst:
            _copy(src, zst)
    elif algorithm == "uncompressed":
        _copy(src, dst)
    else:
        raise LayerError(f"unsupported layer compression {algorithm!r}; use one of {', '.join(COMPRESSIONS)}")


def _copy(src: BinaryIO, dst: BinaryIO | gzip.GzipFile | zstandard.ZstdCompressionWriter) -> None:
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
