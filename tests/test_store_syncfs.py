"""store/syncfs.py: syncfs(2) of the filesystem holding a path, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildkit_py.store.syncfs import sync_filesystem


def test_syncs_the_filesystem_of_a_folder_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    written = tmp_path / "tree" / "file"
    written.write_bytes(b"x" * 100_000)
    sync_filesystem(tmp_path / "tree")
    sync_filesystem(written)
    assert written.read_bytes() == b"x" * 100_000


def test_a_missing_path_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sync_filesystem(tmp_path / "missing")
