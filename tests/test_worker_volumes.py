"""Discarding writes under VOLUME paths never follows a symlink the step left in its upper dir."""

from __future__ import annotations

import os
from pathlib import Path

from buildkit_py.worker.local import _discard_volumes


def test_volume_writes_are_dropped_and_symlinks_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "keep").write_text("host file")
    upper = tmp_path / "upper"
    (upper / "vol" / "sub").mkdir(parents=True)
    (upper / "vol" / "sub" / "f").write_text("written to the volume")
    (upper / "kept").write_text("written outside any volume")
    os.symlink(outside, upper / "link")
    os.symlink(outside, upper / "vol-link")

    _discard_volumes(upper, ("/vol", "/link/etc", "/vol-link", "/not/there"))

    assert not (upper / "vol").exists()
    assert (upper / "kept").exists()
    assert (outside / "etc" / "keep").read_text() == "host file"
    assert not os.path.lexists(upper / "vol-link") and outside.is_dir()
