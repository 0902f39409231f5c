"""Contract tests for the content store, written once for any implementation (dulwich's ObjectStoreTests pattern):
a subclass only provides `make_store`."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from buildkit_py.digest import Digest
from buildkit_py.errors import DigestMismatch, InvalidDigest, StoreError
from buildkit_py.store import ContentStore


def sha256(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


class _FailingStream(io.RawIOBase):
    """Yields some bytes, then fails, as a broken download would."""

    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self.sent:
            self.sent = True
            return b"partial content"
        raise OSError("connection reset")


class ContentStoreContract:
    def make_store(self, root: Path) -> ContentStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> ContentStore:
        return self.make_store(tmp_path / "root")

    def leftovers(self, store: ContentStore) -> list[str]:
        return sorted(os.listdir(store.root / "tmp"))

    def test_put_bytes_round_trip(self, store: ContentStore) -> None:
        digest = store.put_bytes(b"hello")
        assert digest == sha256(b"hello")
        assert store.has(digest)
        assert store.read_bytes(digest) == b"hello"
        assert store.size(digest) == 5
        with store.open(digest) as stream:
            assert stream.read() == b"hello"
        assert self.leftovers(store) == []

    def test_put_stream_returns_digest_and_size(self, store: ContentStore) -> None:
        data = os.urandom(3 << 20)
        digest, size = store.put_stream(io.BytesIO(data), expected=sha256(data))
        assert (digest, size) == (sha256(data), len(data))
        assert store.read_bytes(digest) == data

    def test_put_is_idempotent(self, store: ContentStore) -> None:
        assert store.put_bytes(b"same") == store.put_bytes(b"same")
        assert list(store.iter_digests()) == [sha256(b"same")]
        assert self.leftovers(store) == []

    def test_mismatch_leaves_nothing_behind(self, store: ContentStore) -> None:
        wrong = sha256(b"something else")
        with pytest.raises(DigestMismatch):
            store.put_stream(io.BytesIO(b"content"), expected=wrong)
        assert not store.has(wrong)
        assert not store.has(sha256(b"content"))
        assert list(store.iter_digests()) == []
        assert self.leftovers(store) == []

    def test_failed_stream_leaves_nothing_behind(self, store: ContentStore) -> None:
        with pytest.raises(OSError, match="connection reset"):
            store.put_stream(_FailingStream())  # type: ignore[arg-type]
        assert list(store.iter_digests()) == []
        assert self.leftovers(store) == []

    def test_put_file_copy_keeps_source(self, store: ContentStore, tmp_path: Path) -> None:
        source = tmp_path / "source"
        source.write_bytes(b"file content")
        digest = store.put_file(source)
        assert source.read_bytes() == b"file content"
        assert store.read_bytes(digest) == b"file content"

    def test_put_file_move_renames_without_copy(self, store: ContentStore) -> None:
        file, temp = store.temp_file()
        with file:
            file.write(b"moved content")
        inode = temp.stat().st_ino
        digest = store.put_file(temp, expected=sha256(b"moved content"), move=True)
        assert not temp.exists()
        assert store.path(digest).stat().st_ino == inode
        assert self.leftovers(store) == []

    def test_put_file_move_mismatch_leaves_source(self, store: ContentStore) -> None:
        file, temp = store.temp_file()
        with file:
            file.write(b"content")
        with pytest.raises(DigestMismatch):
            store.put_file(temp, expected=sha256(b"other"), move=True)
        assert temp.read_bytes() == b"content"
        assert list(store.iter_digests()) == []

    def test_corrupt_blob_detected_by_read_bytes_and_verify(self, store: ContentStore) -> None:
        digest = store.put_bytes(b"original")
        path = store.path(digest)
        os.chmod(path, 0o644)
        path.write_bytes(b"tampered")
        with pytest.raises(DigestMismatch):
            store.read_bytes(digest)
        with pytest.raises(DigestMismatch):
            store.verify(digest)

    def test_corrupt_blob_detected_by_streaming_read(self, store: ContentStore) -> None:
        data = os.urandom(2 << 20)
        digest = store.put_bytes(data)
        path = store.path(digest)
        os.chmod(path, 0o644)
        with open(path, "r+b") as file:
            file.seek(1 << 20)
            file.write(b"X")
        with pytest.raises(DigestMismatch), store.open(digest) as stream:
            while stream.read(65536):
                pass

    def test_corrupt_blob_detected_when_reading_exactly_its_size(self, store: ContentStore) -> None:
        # tarfile.addfile reads exactly `size` bytes and never sees EOF; verification must still happen.
        digest = store.put_bytes(b"0123456789")
        path = store.path(digest)
        os.chmod(path, 0o644)
        path.write_bytes(b"0123456788")
        with pytest.raises(DigestMismatch), store.open(digest) as stream:
            stream.read(10)

    def test_truncated_blob_detected(self, store: ContentStore) -> None:
        digest = store.put_bytes(b"0123456789")
        path = store.path(digest)
        os.chmod(path, 0o644)
        path.write_bytes(b"01234")
        with pytest.raises(DigestMismatch):
            store.read_bytes(digest)

    def test_verify_passes_for_intact_blob(self, store: ContentStore) -> None:
        store.verify(store.put_bytes(b"fine"))

    @pytest.mark.parametrize(
        "bad",
        [
            "sha256:../../etc/passwd",
            "sha256:" + "a" * 63,
            "sha256:" + "A" * 64,
            "sha256:" + "g" * 64,
            "md5:" + "a" * 32,
            "../" + "a" * 64,
            "sha256/" + "a" * 64,
            "",
            "blake3:" + "a" * 64,
        ],
    )
    def test_bad_digest_rejected_before_touching_filesystem(self, store: ContentStore, bad: str) -> None:
        before = sorted(p.name for p in store.root.rglob("*"))
        for call in (store.path, store.has, store.open, store.read_bytes, store.delete, store.verify, store.size):
            with pytest.raises(InvalidDigest):
                call(bad)
        with pytest.raises(InvalidDigest):
            store.path(Digest("sha256", "../../../tmp/x" + "a" * 50))
        assert sorted(p.name for p in store.root.rglob("*")) == before

    def test_expected_digest_validated(self, store: ContentStore) -> None:
        with pytest.raises(InvalidDigest):
            store.put_stream(io.BytesIO(b"x"), expected=Digest("sha256", "../x"))
        assert self.leftovers(store) == []

    def test_missing_blob(self, store: ContentStore) -> None:
        missing = sha256(b"never stored")
        assert not store.has(missing)
        for call in (store.open, store.read_bytes, store.size):
            with pytest.raises(StoreError):
                call(missing)

    def test_delete(self, store: ContentStore) -> None:
        digest = store.put_bytes(b"gone soon")
        store.delete(digest)
        assert not store.has(digest)
        store.delete(digest)  # deleting twice is fine

    def test_iter_digests(self, store: ContentStore) -> None:
        digests = {store.put_bytes(bytes([i])) for i in range(5)}
        (store.root / "blobs" / "sha256" / "not-a-digest").write_bytes(b"")
        assert set(store.iter_digests()) == digests

    def test_sha512_expected(self, store: ContentStore) -> None:
        digest = Digest("sha512", hashlib.sha512(b"x").hexdigest())
        assert store.put_bytes(b"x", expected=digest) == digest
        assert store.read_bytes(digest) == b"x"


class TestContentStore(ContentStoreContract):
    def make_store(self, root: Path) -> ContentStore:
        return ContentStore(root)
