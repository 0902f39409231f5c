"""Content-addressed blobs: `<root>/blobs/<algorithm>/<hex>`.

Writes go to a temp file under `<root>/tmp` (same filesystem), are hashed on the way, fsynced, checked against the
expected digest and then renamed into place, so a blob path either holds the full content or does not exist.
Reads are verified: `read_bytes` and `verify` always, `open` when the stream is read through to its end.
Digests are re-validated before they become paths, so a `Digest("sha256", "../x")` never touches the filesystem.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..digest import CHUNK_SIZE, Digest, new_hasher
from ..errors import DigestMismatch, InvalidDigest, StoreError
from .locking import owner_tag

__all__ = ["DEFAULT_ALGORITHM", "ContentStore", "checked_digest"]

DEFAULT_ALGORITHM = "sha256"
_BLOB_ALGORITHMS = ("sha256", "sha512")


def checked_digest(value: Digest | str) -> Digest:
    """Validate a digest (or its text) as one a blob may be stored under."""
    digest = Digest.parse(str(value))
    if digest.algorithm not in _BLOB_ALGORITHMS:
        raise InvalidDigest(f"unsupported blob digest algorithm: {digest}")
    return digest


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _VerifyingReader(io.RawIOBase):
    """Hashes what is read; when the last byte has been read, the digest must match or DigestMismatch is raised.

    A seek away from the current position ends verification (the hash no longer covers the stream in order)."""

    def __init__(self, file: BinaryIO, digest: Digest) -> None:
        super().__init__()
        self._file = file
        self._digest = digest
        self._hasher: object | None = new_hasher(digest.algorithm)
        self._size = os.fstat(file.fileno()).st_size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._file.readinto(buffer)  # type: ignore[attr-defined]
        if count is None:
            return 0
        if self._hasher is not None:
            self._hasher.update(buffer[:count])  # type: ignore[attr-defined]
            self._position += count
            if count == 0 or self._position >= self._size:
                self._check()
        return int(count)

    def _check(self) -> None:
        hasher, self._hasher = self._hasher, None
        actual = hasher.hexdigest()  # type: ignore[union-attr]
        if actual != self._digest.hex:
            raise DigestMismatch(
                f"blob {self._digest} is corrupt: its content hashes to {self._digest.algorithm}:{actual}"
            )

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        if position != self._position:
            self._hasher = None
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class ContentStore:
    """Blobs under `<root>/blobs`, temp files under `<root>/tmp`. `root` is the store's root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.tmp_dir = self.root / "tmp"
        for algorithm in _BLOB_ALGORITHMS[:1]:
            (self.blobs_dir / algorithm).mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------------------------

    def path(self, digest: Digest | str) -> Path:
        checked = checked_digest(digest)
        return self.blobs_dir / checked.algorithm / checked.hex

    def has(self, digest: Digest | str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: Digest | str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise StoreError(f"blob not found: {digest}") from None

    def iter_digests(self) -> Iterator[Digest]:
        for algorithm in _BLOB_ALGORITHMS:
            folder = self.blobs_dir / algorithm
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                try:
                    yield checked_digest(f"{algorithm}:{entry.name}")
                except InvalidDigest:
                    continue

    # -- writing -------------------------------------------------------------------------------------------------

    def temp_file(self, prefix: str = "blob") -> tuple[BinaryIO, Path]:
        """An open temp file under `<root>/tmp`, named with this process as its owner."""
        fd, name = tempfile.mkstemp(prefix=f"{prefix}{owner_tag()}", dir=self.tmp_dir)
        return os.fdopen(fd, "w+b"), Path(name)

    def put_stream(self, stream: BinaryIO, expected: Digest | None = None) -> tuple[Digest, int]:
        """Store what `stream` yields; returns (digest, size). DigestMismatch when `expected` differs."""
        algorithm = checked_digest(expected).algorithm if expected is not None else DEFAULT_ALGORITHM
        hasher = new_hasher(algorithm)
        size = 0
        file, temp = self.temp_file()
        try:
            with file:
                while chunk := stream.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    file.write(chunk)
                    size += len(chunk)
                file.flush()
                os.fsync(file.fileno())
            digest = Digest(algorithm, hasher.hexdigest())
            if expected is not None and digest != expected:
                raise DigestMismatch(f"expected {expected}, got {digest} ({size} bytes)")
            self.place(temp, digest)
        finally:
            temp.unlink(missing_ok=True)
        return digest, size

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        return self.put_stream(io.BytesIO(data), expected)[0]

    def put_file(self, path: Path, expected: Digest | None = None, move: bool = False) -> Digest:
        """Store a file's content. With move=True the file (a temp file of ours on this filesystem) is hashed and
        renamed into place instead of copied; on DigestMismatch it is left where it was."""
        if not move:
            with open(path, "rb") as stream:
                return self.put_stream(stream, expected)[0]
        algorithm = checked_digest(expected).algorithm if expected is not None else DEFAULT_ALGORITHM
        digest, size = self.hash_file(path, algorithm)
        if expected is not None and digest != expected:
            raise DigestMismatch(f"expected {expected}, got {digest} ({size} bytes) for {path}")
        with open(path, "rb") as file:
            os.fsync(file.fileno())
        self.place(path, digest)
        return digest

    @staticmethod
    def hash_file(path: Path, algorithm: str = DEFAULT_ALGORITHM) -> tuple[Digest, int]:
        hasher = new_hasher(algorithm)
        size = 0
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
        return Digest(algorithm, hasher.hexdigest()), size

    def place(self, source: Path, digest: Digest) -> Path:
        """Rename an already verified file into place under `digest`. An existing blob wins (same content) and the
        source is removed. Across filesystems the file is copied to a temp file first, so the rename stays atomic."""
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            source.unlink(missing_ok=True)
            return target
        try:
            os.rename(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            file, temp = self.temp_file()
            try:
                with file, open(source, "rb") as stream:
                    shutil.copyfileobj(stream, file, CHUNK_SIZE)
                    file.flush()
                    os.fsync(file.fileno())
                os.rename(temp, target)
            finally:
                temp.unlink(missing_ok=True)
            source.unlink(missing_ok=True)
        os.chmod(target, 0o444)
        _fsync_dir(target.parent)
        return target

    # -- reading -------------------------------------------------------------------------------------------------

    def open(self, digest: Digest | str, verify: bool = True) -> BinaryIO:
        """A read stream. With verify=True, reading it to the end raises DigestMismatch when the blob is corrupt."""
        checked = checked_digest(digest)
        try:
            file = open(self.path(checked), "rb")  # noqa: SIM115 - the caller closes what we return
        except FileNotFoundError:
            raise StoreError(f"blob not found: {checked}") from None
        if not verify:
            return file
        return io.BufferedReader(_VerifyingReader(file, checked), CHUNK_SIZE)

    def read_bytes(self, digest: Digest | str) -> bytes:
        checked = checked_digest(digest)
        try:
            data = self.path(checked).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob not found: {checked}") from None
        hasher = new_hasher(checked.algorithm)
        hasher.update(data)
        if hasher.hexdigest() != checked.hex:
            raise DigestMismatch(
                f"blob {checked} is corrupt: its content hashes to {checked.algorithm}:{hasher.hexdigest()}"
            )
        return data

    def verify(self, digest: Digest | str) -> None:
        checked = checked_digest(digest)
        with self.open(checked, verify=False) as stream:
            hasher = new_hasher(checked.algorithm)
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
        if hasher.hexdigest() != checked.hex:
            raise DigestMismatch(
                f"blob {checked} is corrupt: its content hashes to {checked.algorithm}:{hasher.hexdigest()}"
            )

    def delete(self, digest: Digest | str) -> None:
        self.path(digest).unlink(missing_ok=True)
