"""unpack_layer: round trips through write_layer_tar, and hostile tars that must not write outside dest."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import uuid
from pathlib import Path

import pytest
import zstandard
from test_layer_generate import CAP_NET_BIND_SERVICE, build_overlay_snapshot

from buildkit_py.errors import LayerError
from buildkit_py.layer import (
    LayerInfo,
    compress_stream,
    detect_compression,
    open_decompressed,
    unpack_layer,
    write_layer_tar,
)

OPAQUE = "trusted.overlay.opaque"


def generate(snapshot: Path) -> tuple[LayerInfo, bytes]:
    out = io.BytesIO()
    return write_layer_tar(snapshot, out), out.getvalue()


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a layer carries about each path: type, mode, owner, mtime (whole seconds), device, target,
    content, xattrs; and which paths share an inode."""
    result: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            st = os.lstat(path)
            rel = str(path.relative_to(root))
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            # overlayfs bookkeeping (origin, impure) does not travel; the opaque flag does, as a whiteout entry.
            names = [] if stat.S_ISLNK(st.st_mode) else os.listxattr(path)
            xattrs = {x: os.getxattr(path, x) for x in names if not x.startswith("trusted.overlay.") or x == OPAQUE}
            first = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 and stat.S_ISREG(st.st_mode) else rel
            result[rel] = (st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), st.st_rdev, content, xattrs, first)
    return result


def unpack(data: bytes, dest: Path, **options: bool) -> LayerInfo:
    dest.mkdir()
    return unpack_layer(io.BytesIO(data), dest, **options)


# --- round trips ----------------------------------------------------------------------------------------------------


@pytest.fixture
def overlay_snapshot(tmp_path: Path) -> Path:
    (tmp_path / "overlay").mkdir()
    return build_overlay_snapshot(tmp_path / "overlay")


def test_round_trip_gives_same_snapshot_and_diff_id(overlay_snapshot: Path, tmp_path: Path) -> None:
    info, data = generate(overlay_snapshot)
    unpacked = unpack(data, tmp_path / "unpacked")
    assert unpacked == info
    again, again_data = generate(tmp_path / "unpacked")
    assert again == info and again_data == data
    assert tree(tmp_path / "unpacked") == tree(overlay_snapshot)
    assert os.getxattr(tmp_path / "unpacked" / "dir", OPAQUE) == b"y"
    whiteout = os.lstat(tmp_path / "unpacked" / "gone.txt")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(tmp_path / "unpacked" / "ping", "security.capability") == CAP_NET_BIND_SERVICE
    assert stat.S_IMODE(os.lstat(tmp_path / "unpacked" / "suid").st_mode) == 0o4755


@pytest.mark.parametrize("algorithm", ["gzip", "zstd", "uncompressed"])
def test_round_trip_through_compression(overlay_snapshot: Path, tmp_path: Path, algorithm: str) -> None:
    info, data = generate(overlay_snapshot)
    compressed = io.BytesIO()
    compress_stream(io.BytesIO(data), compressed, algorithm)
    assert detect_compression(compressed.getvalue()[:8]) == algorithm
    assert open_decompressed(io.BytesIO(compressed.getvalue())).read() == data
    assert unpack(compressed.getvalue(), tmp_path / "unpacked") == info


def test_compression_is_deterministic_and_detects_bzip2_xz() -> None:
    first, second = io.BytesIO(), io.BytesIO()
    compress_stream(io.BytesIO(b"layer" * 1000), first, "gzip")
    compress_stream(io.BytesIO(b"layer" * 1000), second, "gzip")
    assert first.getvalue() == second.getvalue()
    assert detect_compression(b"BZh91AY") == "bzip2"
    assert detect_compression(b"\xfd7zXZ\x00\x00") == "xz"
    with pytest.raises(LayerError, match="unsupported layer compression"):
        compress_stream(io.BytesIO(b""), io.BytesIO(), "lz4")


# --- building tars by hand ------------------------------------------------------------------------------------------


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields: object
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_600_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_format) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return out.getvalue()


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A sentinel folder around dest: after a hostile unpack it must hold nothing but dest."""
    folder = tmp_path / "sandbox"
    folder.mkdir()
    (folder / "sentinel").write_text("untouched\n")
    return folder


def assert_nothing_outside(sandbox: Path) -> None:
    assert sorted(path.name for path in sandbox.iterdir()) == ["dest", "sentinel"]
    assert (sandbox / "sentinel").read_text() == "untouched\n"


UNIQUE = f"buildkit-py-escape-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param([entry("../escaped")], id="dotdot"),
        pytest.param([entry("a/../../escaped")], id="dotdot-inside"),
        pytest.param([entry("link", tarfile.SYMTYPE, linkname="/"), entry(f"link/tmp/{UNIQUE}")], id="symlink-root"),
        pytest.param([entry("link", tarfile.SYMTYPE, linkname=".."), entry("link/escaped")], id="symlink-parent"),
        pytest.param([entry("link", tarfile.SYMTYPE, linkname="../sandbox"), entry("link/x/y")], id="symlink-deep"),
        pytest.param([entry("pw", tarfile.LNKTYPE, linkname="/etc/passwd")], id="hardlink-absolute"),
        pytest.param([entry("out", tarfile.LNKTYPE, linkname="../sentinel")], id="hardlink-dotdot"),
        pytest.param(
            [entry("etc", tarfile.SYMTYPE, linkname="/etc"), entry("pw", tarfile.LNKTYPE, linkname="etc/passwd")],
            id="hardlink-through-symlink",
        ),
        pytest.param(
            [entry("s", tarfile.SYMTYPE, linkname="/etc/passwd"), entry("pw", tarfile.LNKTYPE, linkname="s")],
            id="hardlink-to-symlink",
        ),
        pytest.param([entry("d", tarfile.DIRTYPE), entry("h", tarfile.LNKTYPE, linkname="d")], id="hardlink-to-dir"),
        pytest.param([entry(".wh.."), entry("x")], id="whiteout-dotdot"),
    ],
)
def test_hostile_entries_are_refused(sandbox: Path, hostile: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with pytest.raises(LayerError):
        unpack(make_tar(*hostile), sandbox / "dest")
    assert_nothing_outside(sandbox)
    assert not Path("/tmp", UNIQUE).exists()


def test_absolute_names_land_inside_dest(sandbox: Path) -> None:
    unpack(make_tar(entry(f"/tmp/{UNIQUE}", data=b"inside\n"), entry("./rel", data=b"ok\n")), sandbox / "dest")
    assert (sandbox / "dest" / "tmp" / UNIQUE).read_bytes() == b"inside\n"
    assert (sandbox / "dest" / "rel").read_bytes() == b"ok\n"
    assert not Path("/tmp", UNIQUE).exists()
    assert_nothing_outside(sandbox)


def test_symlinks_are_created_but_never_followed(sandbox: Path) -> None:
    unpack(
        make_tar(entry("up", tarfile.SYMTYPE, linkname="../sentinel"), entry("up", data=b"replaced\n")),
        sandbox / "dest",
    )
    assert (sandbox / "dest" / "up").read_bytes() == b"replaced\n"
    assert not (sandbox / "dest" / "up").is_symlink()
    assert_nothing_outside(sandbox)
    (sandbox / "dest2").mkdir()
    unpack_layer(io.BytesIO(make_tar(entry("abs", tarfile.SYMTYPE, linkname="/etc/passwd"))), sandbox / "dest2")
    assert os.readlink(sandbox / "dest2" / "abs") == "/etc/passwd"


def test_later_duplicates_replace_earlier_ones(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    unpack(
        make_tar(
            entry("f", data=b"one\n"),
            entry("f", data=b"two\n", mode=0o600),
            entry("d", tarfile.DIRTYPE),
            entry("d/inner", data=b"gone\n"),
            entry("d", data=b"now a file\n"),
            entry("x", data=b"file first\n"),
            entry("x", tarfile.DIRTYPE, mode=0o700),
            entry("x/y", data=b"y\n"),
            entry("s", data=b"plain\n"),
            entry("s", tarfile.SYMTYPE, linkname="f"),
            entry("keepdir", tarfile.DIRTYPE, mode=0o755),
            entry("keepdir/kept", data=b"kept\n"),
            entry("keepdir", tarfile.DIRTYPE, mode=0o711),
        ),
        dest,
    )
    assert (dest / "f").read_bytes() == b"two\n" and stat.S_IMODE(os.lstat(dest / "f").st_mode) == 0o600
    assert (dest / "d").read_bytes() == b"now a file\n"
    assert (dest / "x" / "y").read_bytes() == b"y\n" and stat.S_IMODE(os.lstat(dest / "x").st_mode) == 0o700
    assert os.readlink(dest / "s") == "f"
    assert (dest / "keepdir" / "kept").read_bytes() == b"kept\n"
    assert stat.S_IMODE(os.lstat(dest / "keepdir").st_mode) == 0o711


def test_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    info = unpack(
        make_tar(
            entry("early", data=b"removed by the whiteout below\n"),
            entry(".wh.early"),
            entry("sub", tarfile.DIRTYPE),
            entry("sub/.wh.deleted"),
            entry("opq", tarfile.DIRTYPE),
            entry("opq/.wh..wh..opq"),
            entry("opq/new", data=b"new\n"),
            entry(".wh.recreated"),
            entry("recreated", tarfile.DIRTYPE),
            entry(".wh..wh.plnk"),
        ),
        dest,
    )
    assert info.entries == 10
    for whiteout in ("early", "sub/deleted"):
        st = os.lstat(dest / whiteout)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert (dest / "opq" / "new").read_bytes() == b"new\n"
    if os.geteuid() == 0:
        assert os.getxattr(dest / "opq", OPAQUE) == b"y"
        # Deleted and made again in one layer: nothing below may show through.
        assert os.getxattr(dest / "recreated", OPAQUE) == b"y"
    assert sorted(os.listdir(dest)) == ["early", "opq", "recreated", "sub"]


def test_metadata_is_applied_dirs_after_contents(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    unpack(
        make_tar(
            entry("ro", tarfile.DIRTYPE, mode=0o555, mtime=1_500_000_000),
            entry("ro/file", data=b"x\n", mode=0o4755, mtime=1_400_000_000, uid=1000, gid=2000),
            entry("ro/link", tarfile.SYMTYPE, linkname="file", mtime=1_300_000_000),
            entry("ro/fifo", tarfile.FIFOTYPE, mode=0o640),
            entry("hard", tarfile.LNKTYPE, linkname="ro/file"),
        ),
        dest,
    )
    ro, file = os.lstat(dest / "ro"), os.lstat(dest / "ro" / "file")
    assert (stat.S_IMODE(ro.st_mode), ro.st_mtime) == (0o555, 1_500_000_000)
    assert (stat.S_IMODE(file.st_mode), file.st_mtime) == (0o4755, 1_400_000_000)
    assert os.lstat(dest / "ro" / "link").st_mtime == 1_300_000_000
    assert stat.S_ISFIFO(os.lstat(dest / "ro" / "fifo").st_mode)
    assert os.lstat(dest / "hard").st_ino == file.st_ino
    if os.geteuid() == 0:
        assert (file.st_uid, file.st_gid) == (1000, 2000)


def test_pax_subsecond_mtime_and_xattrs(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    info, data = entry("f", data=b"x\n")
    info.pax_headers = {
        "mtime": "1600000000.123456789",
        "SCHILY.xattr.user.k": "v",
        "SCHILY.xattr.trusted.overlay.redirect": "/x",
    }
    unpack(make_tar((info, data)), dest)
    assert os.lstat(dest / "f").st_mtime_ns == 1_600_000_000_123_456_789
    assert os.listxattr(dest / "f") == ["user.k"]


def test_devices_only_when_allowed(tmp_path: Path) -> None:
    null = entry("null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
    unpack(make_tar(null, entry("after", data=b"a\n")), tmp_path / "no", allow_devices=False)
    assert sorted(os.listdir(tmp_path / "no")) == ["after"]
    if os.geteuid() == 0:
        unpack(make_tar(null), tmp_path / "yes")
        assert os.lstat(tmp_path / "yes" / "null").st_rdev == os.makedev(1, 3)


def test_diff_id_covers_the_whole_stream(tmp_path: Path) -> None:
    data = make_tar(entry("f", data=b"x\n"))
    assert len(data) == 10240  # tarfile pads to a record; the padding is part of the blob and of its diff_id
    info = unpack(data, tmp_path / "dest")
    assert (str(info.diff_id), info.size) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def test_empty_stream_is_an_empty_layer(tmp_path: Path) -> None:
    info = unpack(b"", tmp_path / "dest")
    assert (info.size, info.entries) == (0, 0)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda data: data[:700], id="inside-data"),
        pytest.param(lambda data: data[: 1536 + 200], id="inside-second-header"),
        pytest.param(lambda data: data[:1536] + b"garbage!" * 64, id="garbage-second-header"),
        pytest.param(lambda data: b"this is not a tar at all" * 40, id="garbage"),
        pytest.param(lambda data: b"short garbage", id="short-garbage"),
        pytest.param(lambda data: gzip.compress(data)[:-20], id="truncated-gzip"),
        pytest.param(lambda data: zstandard.ZstdCompressor().compress(data)[:-20], id="truncated-zstd"),
        pytest.param(lambda data: b"\x1f\x8b" + b"\x00" * 50, id="corrupt-gzip"),
    ],
)
def test_corrupt_or_truncated_tar_raises_layer_error(tmp_path: Path, cut: object) -> None:
    data = make_tar(entry("a", data=b"x" * 600), entry("b", data=b"y" * 100))
    with pytest.raises(LayerError):
        unpack(cut(data), tmp_path / "dest")  # type: ignore[operator]


def test_destination_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "old").write_text("")
    with pytest.raises(LayerError, match="not empty"):
        unpack_layer(io.BytesIO(make_tar(entry("f"))), tmp_path / "dest")


def test_package_exports() -> None:
    from buildkit_py import layer

    assert all(callable(getattr(layer, name)) for name in layer.__all__)  # each loads on first use
    with pytest.raises(AttributeError):
        layer.no_such_name  # noqa: B018


# Found by tests/test_fuzz_archives.py: each of these headers came out as a ValueError or OverflowError traceback
# (from tarfile's PAX parser, or from os.fchown, os.makedev, os.utime, os.open) instead of a LayerError.
BAD_HEADERS = [
    pytest.param([entry("f", uid=-2)], id="negative-uid"),
    pytest.param([entry("f", gid=2**40)], id="gid-beyond-32-bits"),
    pytest.param([entry("f", uid=2**32 - 1)], id="uid-that-chown-ignores"),
    pytest.param([entry("f", pax_headers={"mtime": "nan"})], id="pax-mtime-nan"),
    pytest.param([entry("d", tarfile.DIRTYPE, pax_headers={"mtime": "inf"})], id="pax-mtime-inf"),
    pytest.param([entry("f", mtime=2**62)], id="mtime-beyond-nanoseconds"),
    pytest.param([entry("c", tarfile.CHRTYPE, devmajor=-1)], id="negative-devmajor"),
    pytest.param([entry("f", pax_headers={"GNU.sparse.map": "nan"})], id="sparse-map-not-numbers"),
    pytest.param([entry("f", pax_headers={"path": "a\0b"})], id="nul-in-name"),
    pytest.param([entry("l", tarfile.SYMTYPE, pax_headers={"linkpath": "a\0b"})], id="nul-in-link-target"),
    pytest.param([entry("f", pax_headers={"SCHILY.xattr.user.a\0b": "x"})], id="nul-in-xattr-name"),
]


@pytest.mark.parametrize("hostile", BAD_HEADERS)
def test_bad_headers_are_layer_errors(sandbox: Path, hostile: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    # GNU base-256 fields hold negative numbers; PAX records carry the rest.
    tar_format = tarfile.PAX_FORMAT if any(info.pax_headers for info, _ in hostile) else tarfile.GNU_FORMAT
    with pytest.raises(LayerError, match="has an invalid|has a NUL byte|a header tarfile cannot read"):
        unpack(make_tar(*hostile, tar_format=tar_format), sandbox / "dest")
    assert_nothing_outside(sandbox)
