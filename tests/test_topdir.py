"""ext4's hint that the folders made in a directory hold unrelated trees (`chattr +T`) on the store's temp folder,
where every step's upper dir is made. Checked with e2fsprogs' own `lsattr`/`chattr` on the filesystem the tests
run on: the flag is there exactly when `chattr` can set it there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from buildkit_py.fs.topdir import mark_unrelated_trees
from buildkit_py.store import Store

pytestmark = pytest.mark.skipif(shutil.which("lsattr") is None, reason="needs e2fsprogs' lsattr and chattr")


def _has_topdir_flag(directory: Path) -> bool:
    listing = subprocess.run(["lsattr", "-d", str(directory)], capture_output=True, text=True, check=True).stdout
    return "T" in listing.split()[0]


def _filesystem_takes_the_flag(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    return subprocess.run(["chattr", "+T", str(probe)], check=False, capture_output=True).returncode == 0


def test_store_temp_folder_carries_the_hint(tmp_path: Path) -> None:
    expected = _filesystem_takes_the_flag(tmp_path)
    with Store(tmp_path / "root") as store:
        assert not _has_topdir_flag(store.tmp_dir)  # opening a store changes nothing: only writing commands mark it
        with store.temp_dir("step-") as scratch:
            assert scratch.parent == store.tmp_dir
        assert _has_topdir_flag(store.tmp_dir) == expected


def test_mark_keeps_the_other_flags(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    before = subprocess.run(["lsattr", "-d", str(folder)], capture_output=True, text=True, check=True).stdout.split()[0]
    marked = mark_unrelated_trees(folder)
    after = subprocess.run(["lsattr", "-d", str(folder)], capture_output=True, text=True, check=True).stdout.split()[0]
    assert marked == _filesystem_takes_the_flag(tmp_path)
    assert {flag for flag in after if flag != "-"} == {flag for flag in before if flag != "-"} | (
        {"T"} if marked else set()
    )
    assert mark_unrelated_trees(folder) == marked  # a second time: nothing to do


def test_mark_is_only_a_hint(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_bytes(b"")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    assert not mark_unrelated_trees(tmp_path / "missing")
    assert not mark_unrelated_trees(regular)
    assert not mark_unrelated_trees(link)  # never through a symlink
    assert not _has_topdir_flag(tmp_path)
