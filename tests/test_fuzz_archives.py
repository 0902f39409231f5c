"""Property-based fuzzing of what unpacks hostile tars: layer unpacking (`layer/unpack.py`) and ADD's extraction of
a local archive (`exec/archive.py`). Whatever the stream, the only exceptions are the project's errors and nothing
outside the target changes.

Beside the target lie a sentinel folder (a file, a subfolder) and a symlink to it; entry names and link targets are
drawn to reach them (`..`, the sentinel's absolute path, the symlink), and the parent's whole tree, metadata included,
is compared before and after. `scripts/fuzz.sh` runs the same properties with many more examples."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hypothesis import event, given
from hypothesis import strategies as st

from buildkit_py.errors import BuildError
from buildkit_py.exec.archive import extract_archive, is_archive
from buildkit_py.layer import unpack_layer

T = TypeVar("T")

# Stand-ins replaced by the workspace's real paths when the tar is written.
SENTINEL = "@SENTINEL@"  # absolute path of the sentinel folder
ESCAPE = "@ESCAPE@"  # absolute path of the symlink to it

COMPONENTS = ("a", "b", "c", "sentinel", "escape", "secret", "sub", ".wh.a", ".wh.b", ".wh..wh..opq", "dev")
HOSTILE_COMPONENTS = (
    ".", "..", "", ".wh..wh.plnk", ".wh.", ".wh..", ".wh...", "x" * 120, "\u00e9", "\udcff", "null", "a\0b",
)  # fmt: skip
ROOTS = ("", "./", "/")
HOSTILE_ROOTS = ("../", "../../", SENTINEL + "/", ESCAPE + "/", "/proc/self/")

path_names = st.builds(
    lambda root, parts, slash: root + "/".join(parts) + slash,
    st.sampled_from(ROOTS * 4 + HOSTILE_ROOTS),
    st.lists(st.sampled_from(COMPONENTS * 3 + HOSTILE_COMPONENTS), min_size=1, max_size=4),
    st.sampled_from(("", "", "/", "//")),
)
TYPES = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE)
HOSTILE_TYPES = (
    tarfile.AREGTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE, b"Z", b"\xff",
)  # fmt: skip
numbers = st.one_of(
    st.integers(0, 0o7777777),
    st.integers(-(2**40), 2**70),
    st.sampled_from((0, -1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 8**11 - 1)),
)


def mostly(usual: st.SearchStrategy[T], rare: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """usual seven times in eight: each hostile field alone is refused early, so most streams must get further."""
    return st.integers(0, 7).flatmap(lambda draw: rare if draw == 0 else usual)


PAX_KEYS = (
    "mtime", "atime", "uid", "gid", "size", "path", "linkpath", "uname", "gname", "SCHILY.xattr.user.note",
    "SCHILY.xattr.trusted.overlay.opaque", "SCHILY.xattr.trusted.overlay.redirect", "SCHILY.xattr.security.capability",
    "SCHILY.xattr.", "SCHILY.xattr.bogus", "SCHILY.xattr.user.a\0b", "GNU.sparse.map", "GNU.sparse.size",
    "GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.name", "GNU.sparse.realsize", "hdrcharset",
)  # fmt: skip
PAX_VALUES = (
    "nan", "inf", "-inf", "1e30", "-1", "0", "1.5", "abc", "", "99999999999999999999999", "y", SENTINEL, ESCAPE,
    "../../x", "0,1,2", "\u00e9",
)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    name: str
    type: bytes
    linkname: str
    mode: int
    uid: int
    gid: int
    mtime: int
    devmajor: int
    devminor: int
    data: bytes
    pax: tuple[tuple[str, str], ...]


entries = st.builds(
    Entry,
    name=path_names,
    type=st.sampled_from(TYPES + TYPES + HOSTILE_TYPES),
    linkname=st.one_of(path_names, st.sampled_from(("", "/", "..", SENTINEL, ESCAPE, SENTINEL + "/secret"))),
    mode=mostly(st.integers(0, 0o7777), numbers),
    uid=mostly(st.sampled_from((0, 1, 1000, 65534)), numbers),
    gid=mostly(st.sampled_from((0, 1, 1000, 65534)), numbers),
    mtime=mostly(st.integers(0, 2**33), numbers),
    devmajor=mostly(st.integers(0, 300), numbers),
    devminor=mostly(st.integers(0, 300), numbers),
    data=st.binary(max_size=64),
    pax=mostly(
        st.just(()), st.lists(st.tuples(st.sampled_from(PAX_KEYS), st.sampled_from(PAX_VALUES)), max_size=3).map(tuple)
    ),
)


@dataclass(frozen=True)
class RawHeader:
    """A header block written field by field, so the numbers can be anything a hostile writer puts there."""

    name: bytes
    size: bytes
    numbers: bytes
    type: bytes
    linkname: bytes
    data: bytes


raw_numbers = st.one_of(
    st.sampled_from((b"0000644\0", b"-1\0", b"7777777777\0", b"\x80" + b"\0" * 6 + b"\x01", b"\xff" * 8, b"", b"x")),
    st.binary(max_size=12),
)
raw_headers = st.builds(
    RawHeader,
    name=st.one_of(path_names.map(lambda name: name.encode("utf-8", "surrogateescape")), st.binary(max_size=100)),
    size=st.one_of(
        st.sampled_from((b"00000000000\0", b"00000000010\0", b"-0000000001\0", b"\xff" * 12, b"\x80" + b"\xff" * 11)),
        raw_numbers,
    ),
    numbers=raw_numbers,
    type=st.sampled_from(TYPES + HOSTILE_TYPES),
    linkname=path_names.map(lambda name: name.encode("utf-8", "surrogateescape")),
    data=st.binary(max_size=1100),
)

FORMATS = (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)


@dataclass(frozen=True)
class Stream:
    """A tar stream to build: entries and raw headers in order, then damage (truncation, flipped bytes) and
    compression."""

    format: int
    items: tuple[Entry | RawHeader, ...]
    end_blocks: int
    cut: int | None
    flips: tuple[tuple[int, int], ...]
    gzip_wrapped: bool
    gzip_cut: int | None


streams = st.builds(
    Stream,
    format=st.sampled_from(FORMATS),
    items=st.lists(mostly(entries, raw_headers), min_size=1, max_size=8).map(tuple),
    end_blocks=st.integers(0, 2),
    cut=mostly(st.none(), st.integers(0, 6000)),
    flips=mostly(st.just(()), st.lists(st.tuples(st.integers(0, 6000), st.integers(1, 255)), max_size=2).map(tuple)),
    gzip_wrapped=st.booleans(),
    gzip_cut=mostly(st.none(), st.integers(0, 200)),
)


@dataclass(frozen=True)
class Workspace:
    parent: Path
    target: Path
    sentinel: Path
    escape: Path

    def place(self, text: str) -> str:
        return text.replace(SENTINEL, str(self.sentinel)).replace(ESCAPE, str(self.escape))


@contextmanager
def workspace() -> Iterator[Workspace]:
    with tempfile.TemporaryDirectory(prefix="pybuild-fuzz-") as folder:
        parent = Path(folder)
        sentinel = parent / "sentinel"
        (sentinel / "sub").mkdir(parents=True)
        (sentinel / "secret").write_bytes(b"secret\n")
        (sentinel / "sub" / "a").write_bytes(b"a\n")
        os.symlink(sentinel, parent / "escape")
        (parent / "target").mkdir()
        yield Workspace(parent, parent / "target", sentinel, parent / "escape")


def outside(space: Workspace) -> dict[str, tuple[object, ...]]:
    """Every path of the parent folder but the target's contents, with all that can change about it."""
    found: dict[str, tuple[object, ...]] = {}
    for directory, dirs, files in os.walk(space.parent):
        if Path(directory) == space.target:
            dirs[:] = []
            continue
        for name in [".", *dirs, *files]:
            path = Path(directory, name)
            info = os.lstat(path)
            content: object = None
            if stat.S_ISREG(info.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            key = os.path.normpath(os.path.relpath(path, space.parent))
            found[key] = (
                info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_nlink, info.st_mtime_ns,
                info.st_ctime_ns, content,
            )  # fmt: skip
    # The target itself may change (its mode, owner and time come from the tar); nothing else may.
    found.pop("target")
    return found


def _raw_block(header: RawHeader, space: Workspace) -> bytes:
    def field(value: bytes, size: int) -> bytes:
        return value[:size].ljust(size, b"\0")

    block = bytearray(
        field(space.place(header.name.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape"), 100)
        + field(header.numbers, 8) * 3  # mode, uid, gid
        + field(header.size, 12)
        + field(header.numbers, 12)  # mtime
        + b" " * 8
        + field(header.type, 1)
        + field(space.place(header.linkname.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape"), 100)
        + b"ustar\x0000"
        + bytes(512 - 265)
    )
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    data = header.data + bytes(-len(header.data) % 512)
    return bytes(block) + data


def _entry_blocks(entry: Entry, stream_format: int, space: Workspace) -> bytes:
    info = tarfile.TarInfo(space.place(entry.name))
    info.type = entry.type
    info.linkname = space.place(entry.linkname)
    info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
    info.devmajor, info.devminor = entry.devmajor, entry.devminor
    info.pax_headers = {key: space.place(value) for key, value in entry.pax}
    regular = entry.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
    info.size = len(entry.data) if regular else 0
    try:
        header = info.tobuf(stream_format, "utf-8", "surrogateescape")
    except (ValueError, OverflowError, UnicodeError):
        return b""  # the format cannot hold this entry; raw headers cover such fields
    data = entry.data if regular else b""
    return header + data + bytes(-len(data) % 512)


def tar_bytes(stream: Stream, space: Workspace) -> bytes:
    data = b"".join(
        _raw_block(item, space) if isinstance(item, RawHeader) else _entry_blocks(item, stream.format, space)
        for item in stream.items
    )
    data += bytes(512 * stream.end_blocks)
    for position, xor in stream.flips:
        if position < len(data):
            data = data[:position] + bytes([data[position] ^ xor]) + data[position + 1 :]
    if stream.cut is not None:
        data = data[: stream.cut]
    if stream.gzip_wrapped:
        data = gzip.compress(data, mtime=0)
        if stream.gzip_cut is not None:
            data = data[: len(data) - stream.gzip_cut]
    return data


def check_layer_unpack(stream: Stream) -> str:
    """Unpack the stream as a layer; what happened, for the statistics of scripts/fuzz.sh."""
    with workspace() as space:
        before = outside(space)
        try:
            info = unpack_layer(io.BytesIO(tar_bytes(stream, space)), space.target)
            outcome = f"unpacked {min(info.entries, 3)}+ entries"
        except BuildError as error:
            outcome = f"refused: {type(error).__name__}"
        assert outside(space) == before
        return outcome


def check_archive_extract(stream: Stream) -> str:
    """Extract the stream as ADD would a local archive; what happened."""
    with workspace() as space, tempfile.TemporaryDirectory(prefix="pybuild-fuzz-src-") as source:
        archive = Path(source, "archive.tar")
        archive.write_bytes(tar_bytes(stream, space))
        before = outside(space)
        try:
            outcome = "not an archive"
            with open(archive, "rb") as raw:
                if is_archive(raw):
                    extract_archive(raw, space.target, "archive.tar")
                outcome = f"extracted {min(len(os.listdir(space.target)), 3)}+ top-level entries"
        except BuildError as error:
            outcome = f"refused: {type(error).__name__}"
        assert outside(space) == before
        return outcome


@given(streams)
def test_layer_unpack_stays_inside_and_raises_only_layer_errors(stream: Stream) -> None:
    event(check_layer_unpack(stream))


@given(streams)
def test_add_extraction_stays_inside_and_raises_only_project_errors(stream: Stream) -> None:
    event(check_archive_extract(stream))
