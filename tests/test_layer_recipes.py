"""A layer is on disk once: its snapshot, plus a recipe that rebuilds its tar byte for byte. Built layers are kept
that way from the start; pulled and loaded ones when their tar rebuilds from the snapshot it unpacked to; any
tampering with the snapshot is caught when the tar is rebuilt."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from buildkit_py.digest import Digest
from buildkit_py.errors import DigestMismatch
from buildkit_py.layer.generate import layer_recipe, write_layer_tar
from buildkit_py.layer.tarsplit import commit_unpacked_layer, recipe_for_tar
from buildkit_py.layer.unpack import unpack_layer
from buildkit_py.store import Store
from buildkit_py.store.recipes import RecipeReader


def _tree(root: Path) -> Path:
    root.mkdir()
    (root / "big").write_bytes(os.urandom(300_000))
    (root / "dir").mkdir()
    (root / "dir" / "small").write_text("small\n")
    (root / "dir" / "empty").write_bytes(b"")
    os.link(root / "dir" / "small", root / "hard")
    os.symlink("dir/small", root / "link")
    return root


def test_a_recipe_rebuilds_the_tar_write_layer_tar_writes(tmp_path: Path) -> None:
    snapshot = _tree(tmp_path / "snapshot")
    expected = io.BytesIO()
    written = write_layer_tar(snapshot, expected)
    info, recipe = layer_recipe(snapshot)
    assert info == written
    assert len(recipe) < 2000  # headers only: the 300 kB of content stay in the snapshot
    with RecipeReader(recipe, snapshot, info.diff_id, info.size) as rebuilt:
        assert rebuilt.read() == expected.getvalue()
    rebuilt = RecipeReader(recipe, snapshot, info.diff_id, info.size)
    with rebuilt, tarfile.open(fileobj=rebuilt, mode="r:") as archive:  # tarfile reads it, seeking included
        assert archive.extractfile("dir/small").read() == b"small\n"  # type: ignore[union-attr]


def test_a_tampered_snapshot_does_not_rebuild(tmp_path: Path) -> None:
    snapshot = _tree(tmp_path / "snapshot")
    info, recipe = layer_recipe(snapshot)
    (snapshot / "dir" / "small").write_text("SMALL\n")  # same size, other bytes
    with pytest.raises(DigestMismatch, match="its snapshot rebuilds to"):
        RecipeReader(recipe, snapshot, info.diff_id, info.size).read()
    os.remove(snapshot / "big")
    os.symlink("/etc/passwd", snapshot / "big")  # a recipe never follows a symlink out of its snapshot
    with pytest.raises(Exception) as failure:
        RecipeReader(recipe, snapshot, info.diff_id, info.size).read()
    assert "missing from its snapshot" in str(failure.value)


def _sha256(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def _tar(entries: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in entries:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return out.getvalue()  # with tarfile's own record padding at the end


@pytest.mark.parametrize(
    ("entries", "kept_as_recipe"),
    [
        ([("a", b"alpha\n"), ("./b/c", b"gamma" * 1000)], True),
        ([("a", b"first\n"), ("a", b"second\n")], False),  # the first content is not in the snapshot any more
        ([("d/x", b"gone soon\n"), ("d/.wh.x", b"")], False),  # deleted by a whiteout in the same layer
    ],
)
def test_an_unpacked_layer_is_kept_as_a_recipe_only_when_it_rebuilds(
    tmp_path: Path, entries: list[tuple[str, bytes]], kept_as_recipe: bool
) -> None:
    data = _tar(entries)
    diff_id = _sha256(data)
    store = Store(tmp_path / "root")
    with store.temp_dir("t") as work:
        tar_path, snapshot = work / "layer.tar", work / "root"
        tar_path.write_bytes(data)
        snapshot.mkdir()
        with open(tar_path, "rb") as stream:
            unpack_layer(stream, snapshot)
        assert (recipe_for_tar(tar_path, snapshot, diff_id, len(data)) is not None) is kept_as_recipe
        commit_unpacked_layer(store, tar_path, diff_id, len(data), snapshot)
    assert store.layers.kept_as_recipe(diff_id) is kept_as_recipe
    assert store.blobs.has(diff_id) is not kept_as_recipe
    with store.layers.open(diff_id) as stream:
        assert stream.read() == data


def test_built_layers_are_on_disk_once_and_check_finds_tampering(tmp_path: Path) -> None:
    root = tmp_path / "root"
    context = tmp_path / "context"
    context.mkdir()
    (context / "payload").write_bytes(os.urandom(2_000_000))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    assert cli("build", "-q", "-t", "once:1", str(context)).returncode == 0
    store = Store(root)
    from buildkit_py.image.stored import image_config

    (diff_id,) = image_config(store, store.resolve("once:1")).diff_ids
    assert store.layers.kept_as_recipe(diff_id) and not store.blobs.has(diff_id)
    blob_bytes = sum(path.stat().st_size for path in (root / "blobs").rglob("*") if path.is_file())
    assert blob_bytes < 100_000  # the 2 MB are in the snapshot only
    assert cli("system", "check").returncode == 0

    payload = store.snapshots.path(diff_id) / "payload"
    content = bytearray(payload.read_bytes())
    content[1000] ^= 0xFF
    payload.write_bytes(bytes(content))
    found = cli("system", "check")
    assert found.returncode == 1 and f"damaged layer snapshot {diff_id}" in found.stdout
    saved = cli("save", "-o", str(tmp_path / "x.tar"), "once:1")
    assert saved.returncode == 1 and "is damaged" in saved.stderr and "Traceback" not in saved.stderr
    content[1000] ^= 0xFF
    payload.write_bytes(bytes(content))
    assert cli("system", "check").returncode == 0
    assert cli("save", "-o", str(tmp_path / "x.tar"), "once:1").returncode == 0
