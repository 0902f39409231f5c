"""The one Digest type: "algo:hex". blake3 for internal keys and content hashes; sha256 for what leaves as OCI."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

import blake3

from .errors import InvalidDigest

_HEX_LENGTH = {"sha256": 64, "blake3": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+):([a-f0-9]+)$")
CHUNK_SIZE = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.match(text)
        if match is None or _HEX_LENGTH.get(match.group(1)) != len(match.group(2)):
            raise InvalidDigest(f"invalid digest: {text!r}")
        return cls(match.group(1), match.group(2))

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        return self.hex[:12]


def new_hasher(algorithm: str) -> Any:
    if algorithm == "blake3":
        return blake3.blake3()
    if algorithm in ("sha256", "sha512"):
        import hashlib  # it loads OpenSSL, which a no-op rebuild never needs

        return hashlib.new(algorithm)
    raise InvalidDigest(f"unsupported digest algorithm: {algorithm}")


def digest_bytes(data: bytes, algorithm: str = "blake3") -> Digest:
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return Digest(algorithm, hasher.hexdigest())


def digest_stream(stream: BinaryIO, algorithm: str = "blake3") -> Digest:
    hasher = new_hasher(algorithm)
    while chunk := stream.read(CHUNK_SIZE):
        hasher.update(chunk)
    return Digest(algorithm, hasher.hexdigest())


def canonical_json(value: Any) -> bytes:
    """The serialisation that digests are taken of: sorted keys, no spaces, UTF-8. Text read from bytes that were not
    UTF-8 (a Dockerfile's, kept as surrogate escapes) is written back as those bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogateescape"
    )


def digest_json(value: Any, algorithm: str = "blake3") -> Digest:
    return digest_bytes(canonical_json(value), algorithm)
