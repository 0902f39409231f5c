"""The monitor's socket protocol: frames of one kind byte, a 4-byte length, and the payload.

A client first sends a HELLO (JSON: which streams it wants, whether it sends stdin, its terminal size). A monitor is
forked before it knows its container: the command that forked it sends START (JSON: the container's id and that
command's hello), or CREATE (the image, name and run options of a container to create first), and gets STARTED
(JSON: the container's id and its first process's pid) or FAILED (JSON: a message and Docker's exit code), and every attached client with
STDOUT/STDERR data and, at the end, EXIT (JSON: the exit code). Clients send STDIN data, STDIN_EOF, RESIZE (JSON
rows/cols) and SIGNAL (JSON number). JSON only, small and bounded: either side may be the other's adversary.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from ..errors import ContainerError

__all__ = [
    "CREATE",
    "EXIT",
    "FAILED",
    "HELLO",
    "RESIZE",
    "SIGNAL",
    "START",
    "STARTED",
    "STDERR",
    "STDIN",
    "STDIN_EOF",
    "STDOUT",
    "FrameReader",
    "decode_json",
    "encode",
    "encode_json",
]

HELLO, STARTED, FAILED, STDOUT, STDERR, EXIT, STDIN, STDIN_EOF, RESIZE, SIGNAL, START, CREATE = range(1, 13)
_HEADER = struct.Struct("!BI")
MAX_FRAME = 1 << 20


def encode(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def encode_json(kind: int, document: dict[str, Any]) -> bytes:
    return encode(kind, json.dumps(document).encode())


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except ValueError:
        raise ContainerError("malformed message on the container's socket") from None
    if not isinstance(document, dict):
        raise ContainerError("malformed message on the container's socket")
    return document


class FrameReader:
    """Frames out of a byte stream, fed as it arrives."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise ContainerError("oversized message on the container's socket")
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return frames


def read_frame(sock: socket.socket, reader: FrameReader, pending: list[tuple[int, bytes]]) -> tuple[int, bytes] | None:
    """The next frame from a blocking socket, or None at EOF."""
    while not pending:
        data = sock.recv(65536)
        if not data:
            return None
        pending.extend(reader.feed(data))
    return pending.pop(0)
