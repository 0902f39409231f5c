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
        reader = zstandard.ZstdDecompressor().stream_reader(replay, read_size=_CHUNK, read_across_frames=True)
        return cast(BinaryIO, reader)
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
