"""write_layer_tar on the upper dir of a real overlay mount, read back with tarfile; and a header check against Docker."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shutil
import stat
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from buildkit_py.errors import LayerError
from buildkit_py.layer import LayerInfo, is_empty_snapshot, unpack_layer, write_layer_tar
from buildkit_py.layer.generate import _go_style, _plain_ustar_header

# security.capability v2 for cap_net_bind_service+ep: magic|effective, permitted low word bit 10, rest zero.
CAP_NET_BIND_SERVICE = b"\x01\x00\x00\x02" + (1 << 10).to_bytes(4, "little") + bytes(12)
LONG_DIR = "d" * 120
LONG_FILE = "f" * 150  # the path is over 255 bytes, each name over 100
NON_ASCII = "grüße-日本.txt"
MTIME = 1_700_000_000


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_lower(lower: Path) -> None:
    for name in ("keep.txt", "gone.txt", "edit.txt", "dir/a", "dir/b", "sub/deep/f"):
        _write(lower / name, f"lower {name}\n")


def change_through_overlay(merged: Path) -> None:
    """What a RUN step could do: delete, re-create a dir, edit, link, and make every kind of file."""
    os.remove(merged / "gone.txt")
    shutil.rmtree(merged / "dir")
    (merged / "dir").mkdir()
    _write(merged / "dir" / "new", "new\n")
    with open(merged / "edit.txt", "a") as edited:
        edited.write("edited\n")
    _write(merged / "hl1", "linked\n")
    os.link(merged / "hl1", merged / "hl2")
    os.link(merged / "keep.txt", merged / "keep-link")  # copies keep.txt up, then links it
    os.mkfifo(merged / "fifo")
    os.mknod(merged / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    _write(merged / LONG_DIR / LONG_FILE, "long\n")
    _write(merged / NON_ASCII, "unicode\n")
    _write(merged / "suid", "#!/bin/sh\n")
    os.chmod(merged / "suid", 0o4755)
    (merged / "tmp").mkdir()
    os.chmod(merged / "tmp", 0o1777)
    os.symlink("keep.txt", merged / "link")
    _write(merged / "owned", "owned\n")
    os.chown(merged / "owned", 1234, 5678)
    _write(merged / "ping", "binary\n")
    os.setxattr(merged / "ping", "security.capability", CAP_NET_BIND_SERVICE)
    os.setxattr(merged / "ping", "user.note", b"kept")


def build_overlay_snapshot(tmp_path: Path) -> Path:
    """The upper dir of a real overlay mount after change_through_overlay, unmounted."""
    lower, upper, work, merged = (tmp_path / name for name in ("lower", "upper", "work", "merged"))
    for folder in (lower, upper, work, merged):
        folder.mkdir()
    make_lower(lower)
    options = f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=False, capture_output=True
    )
    assert mounted.returncode == 0, f"cannot mount overlay: {mounted.stderr.decode().strip()}"
    try:
        change_through_overlay(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    # Fixed mtimes, set on the upper dir itself: through the overlay they would copy up untouched lower files.
    for root, dirs, files in os.walk(upper):
        for name in dirs + files:
            os.utime(Path(root, name), (MTIME, MTIME), follow_symlinks=False)
    return upper


@pytest.fixture
def overlay_snapshot(tmp_path: Path) -> Path:
    return build_overlay_snapshot(tmp_path)


def generate(snapshot: Path) -> tuple[LayerInfo, bytes]:
    out = io.BytesIO()
    info = write_layer_tar(snapshot, out)
    return info, out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as archive:
        return archive.getmembers()


def raw_names(data: bytes) -> list[bytes]:
    """Names as written in the ustar header blocks (tarfile strips the trailing slash of directories)."""
    return [header_block(data, member)[:100].rstrip(b"\0") for member in members(data)]


def header_block(data: bytes, member: tarfile.TarInfo) -> bytes:
    """The ustar header of member itself, after any PAX header blocks."""
    return data[member.offset_data - 512 : member.offset_data]


# Sorted by the names on disk: the whiteout of gone.txt sorts as "gone.txt", not as ".wh.gone.txt".
EXPECTED_ORDER = [
    LONG_DIR,
    f"{LONG_DIR}/{LONG_FILE}",
    "dir",
    "dir/.wh..wh..opq",
    "dir/new",
    "edit.txt",
    "fifo",
    ".wh.gone.txt",
    NON_ASCII,
    "hl1",
    "hl2",
    "keep-link",
    "keep.txt",
    "link",
    "null",
    "owned",
    "ping",
    "suid",
    "tmp",
]


def test_overlay_snapshot_becomes_exact_entries(overlay_snapshot: Path) -> None:
    info, data = generate(overlay_snapshot)
    entries = {member.name: member for member in members(data)}
    assert [member.name for member in members(data)] == EXPECTED_ORDER
    assert info.entries == len(EXPECTED_ORDER)
    assert info.size == len(data)
    assert str(info.diff_id) == "sha256:" + hashlib.sha256(data).hexdigest()

    def kind(name: str) -> bytes:
        return entries[name].type

    assert kind("dir") == tarfile.DIRTYPE and kind(LONG_DIR) == kind("tmp") == tarfile.DIRTYPE
    for whiteout in (".wh.gone.txt", "dir/.wh..wh..opq"):
        assert kind(whiteout) == tarfile.REGTYPE and entries[whiteout].size == 0
    assert kind("fifo") == tarfile.FIFOTYPE
    assert (kind("null"), entries["null"].devmajor, entries["null"].devminor) == (tarfile.CHRTYPE, 1, 3)
    assert (kind("link"), entries["link"].linkname) == (tarfile.SYMTYPE, "keep.txt")
    # The first name of an inode in walk order carries the data; later names link to it.
    assert (kind("hl1"), kind("hl2"), entries["hl2"].linkname) == (tarfile.REGTYPE, tarfile.LNKTYPE, "hl1")
    assert (kind("keep-link"), kind("keep.txt"), entries["keep.txt"].linkname) == (
        tarfile.REGTYPE,
        tarfile.LNKTYPE,
        "keep-link",
    )
    assert stat.S_IMODE(entries["suid"].mode) == 0o4755
    assert stat.S_IMODE(entries["tmp"].mode) == 0o1777
    assert (entries["owned"].uid, entries["owned"].gid) == (1234, 5678)
    for member in entries.values():
        assert member.uname == member.gname == ""
        assert member.mtime == MTIME
    assert entries["ping"].pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == (
        CAP_NET_BIND_SERVICE
    )
    assert entries["ping"].pax_headers["SCHILY.xattr.user.note"] == "kept"
    assert not any("overlay" in key for member in entries.values() for key in member.pax_headers)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        edited = archive.extractfile("edit.txt")
        assert edited is not None and edited.read() == b"lower edit.txt\nedited\n"


def test_header_conventions(overlay_snapshot: Path) -> None:
    _, data = generate(overlay_snapshot)
    names = raw_names(data)
    assert b"dir/" in names and b"tmp/" in names
    assert not any(name.startswith((b"./", b"/")) for name in names)
    found = members(data)
    # Long and non-ASCII names travel in PAX records, not GNU longname entries.
    for member in found:
        header = header_block(data, member)
        assert header[257:265] == b"ustar\x0000"
        assert header[156:157] not in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
    assert len(found[1].name.encode()) > 255
    # Two zero blocks close the archive, with no padding to a 10 KiB record (as Go's archive/tar).
    assert data[-1024:] == bytes(1024) and data[-1536:-1024] != bytes(512)


def test_same_snapshot_same_diff_id(overlay_snapshot: Path) -> None:
    first, first_data = generate(overlay_snapshot)
    second, second_data = generate(overlay_snapshot)
    assert first == second and first_data == second_data


def test_real_file_named_like_a_whiteout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / ".wh.passwd").write_text("not a whiteout\n")
    with pytest.raises(LayerError, match=r"etc/\.wh\.passwd"):
        generate(tmp_path)


def test_overlay_redirect_is_refused(tmp_path: Path) -> None:
    (tmp_path / "moved").mkdir()
    os.setxattr(tmp_path / "moved", "trusted.overlay.redirect", b"/original")
    with pytest.raises(LayerError, match="redirect_dir=off"):
        generate(tmp_path)


def test_empty_snapshot(tmp_path: Path) -> None:
    assert is_empty_snapshot(tmp_path)
    info, data = generate(tmp_path)
    assert (info.entries, info.size, data) == (0, 1024, bytes(1024))
    (tmp_path / "x").write_text("")
    assert not is_empty_snapshot(tmp_path)


def test_large_file_streams_in_chunks(tmp_path: Path) -> None:
    payload = os.urandom(3 * (1 << 20) + 123)  # several copy chunks plus a partial block
    (tmp_path / "big").write_bytes(payload)
    info, data = generate(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        big = archive.extractfile("big")
        assert big is not None and big.read() == payload
    assert info.size == 512 + len(payload) + (-len(payload) % 512) + 1024


def test_sorted_by_name_bytes_dirs_before_contents(tmp_path: Path) -> None:
    for name in ("b", "a-b", "a/z", "a/c/d", "B", "_"):
        _write(tmp_path / name, "")
    _, data = generate(tmp_path)
    # Per-directory byte order, depth first: "a/..." comes before "a-b" although "-" < "/".
    assert [member.name for member in members(data)] == ["B", "_", "a", "a/c", "a/c/d", "a/z", "a-b", "b"]


def test_tree_deeper_than_the_descriptor_limit(tmp_path: Path) -> None:
    """The walk holds one directory open at a time: a tree deeper than RLIMIT_NOFILE is still written whole."""
    depth = 300
    deepest = tmp_path.joinpath(*["d"] * depth)
    deepest.mkdir(parents=True)
    (deepest / "f").write_text("bottom")
    (tmp_path / "d" / "after").write_text("beside the first folder, after it")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        info, data = generate(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    names = [member.name for member in members(data)]
    assert info.entries == depth + 2
    assert names[:3] == ["d", "d/after", "d/d"]
    assert names[-2:] == ["/".join(["d"] * depth), "/".join(["d"] * depth) + "/f"]


@pytest.mark.docker
def test_headers_match_docker_legacy_builder(tmp_path: Path) -> None:
    """Docker's own layer, unpacked by us and written again, gives the same bytes except uname/gname (Docker writes
    the host's names, "root"; we write none, as umoci) and so the header checksum."""
    context = tmp_path / "context"
    _write(context / "dir" / "sub" / "f.txt", "hello\n")
    _write(context / "dir" / "x", "x\n")
    os.chmod(context / "dir" / "x", 0o4755)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY dir /dir\n")
    tag = f"buildkit-py-layer-test:{uuid.uuid4().hex[:12]}"
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True, env=env)
    try:
        saved = tmp_path / "image.tar"
        subprocess.run(["docker", "save", "-o", str(saved), tag], check=True)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], check=False, capture_output=True)
    with tarfile.open(saved) as image:
        manifest = json.load(image.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(image.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        layer_file = image.extractfile(manifest[0]["Layers"][-1])
        assert layer_file is not None
        docker_layer = layer_file.read()

    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    unpacked = unpack_layer(io.BytesIO(docker_layer), snapshot)
    assert str(unpacked.diff_id) == config["rootfs"]["diff_ids"][-1]
    ours, our_layer = generate(snapshot)
    assert ours.size == len(docker_layer) and ours.entries == unpacked.entries
    assert raw_names(docker_layer) == raw_names(our_layer) == [b"dir/", b"dir/sub/", b"dir/sub/f.txt", b"dir/x"]
    for offset in range(0, len(docker_layer), 512):
        docker_block, our_block = docker_layer[offset : offset + 512], our_layer[offset : offset + 512]
        if docker_block[257:262] != b"ustar":
            assert docker_block == our_block  # file data and end blocks
            continue
        assert docker_block[265:297].rstrip(b"\0") == b"root" and our_block[265:329] == bytes(64)
        for start, end in ((0, 148), (156, 265), (329, 512)):  # all but checksum, uname, gname
            assert docker_block[start:end] == our_block[start:end], (offset, start)


@pytest.mark.parametrize(
    ("name", "kind", "fields"),
    [
        ("etc/passwd", tarfile.REGTYPE, {"size": 1234, "mode": 0o644}),
        ("bin", tarfile.DIRTYPE, {"mode": 0o755}),
        ("tmp", tarfile.DIRTYPE, {"mode": 0o1777, "uid": 65534, "gid": 65534}),
        ("usr/bin/su", tarfile.REGTYPE, {"mode": 0o4755, "size": 8**8}),
        ("sh", tarfile.SYMTYPE, {"linkname": "busybox", "mode": 0o777}),
        ("b", tarfile.LNKTYPE, {"linkname": "a"}),
        ("dev/sda", tarfile.BLKTYPE, {"devmajor": 8, "devminor": 1, "mode": 0o660}),
        ("p", tarfile.FIFOTYPE, {"mode": 0o600, "mtime": 0}),
        ("x" * 100, tarfile.REGTYPE, {}),
    ],
)
def test_fast_header_path_matches_tarfile_path(name: str, kind: bytes, fields: dict[str, int | str]) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mtime = kind, MTIME
    for key, value in fields.items():
        setattr(info, key, value)
    full_mode = info.mode | (stat.S_IFDIR if kind == tarfile.DIRTYPE else stat.S_IFREG)
    fast = _plain_ustar_header(info, full_mode)
    assert fast is not None
    assert fast == _go_style(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), full_mode)
    info.name = "y" * 101
    assert _plain_ustar_header(info, full_mode) is None
