"""A build context that changes under the build: a directory of it is swapped, over and over, for a symlink to a
folder outside the context that holds a secret. Whatever moment the swap hits, nothing outside the context is read:
the secret is in no copy, no checksum and no image, and every failure is one of the project's errors."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest

from buildkit_py.builder import build
from buildkit_py.context.hashing import ContextHasher
from buildkit_py.digest import Digest
from buildkit_py.errors import BuildError
from buildkit_py.exec.fileops import apply_actions
from buildkit_py.solver.ops import Chown, CopyAction
from buildkit_py.store import Store

CTX = Digest("blake3", "c" * 64)
SOURCES = ("d/", ".")

# Swaps <context>/d between the directory and a symlink to the outside folder until the stop file appears, then
# leaves the directory in place. Two renames each way: a directory cannot be renamed over a symlink, nor the
# reverse; in between, d is briefly missing.
_SWAPPER = """
import os, sys
d, spare_dir, spare_link, stop = sys.argv[1:5]
swaps = 0
while not os.path.exists(stop):
    os.rename(d, spare_dir)
    os.rename(spare_link, d)
    os.rename(d, spare_link)
    os.rename(spare_dir, d)
    swaps += 1
print(swaps)
"""


@dataclass(frozen=True)
class RacingContext:
    context: Path
    secret: bytes
    spare: Path

    @contextmanager
    def swapping(self) -> Iterator[None]:
        """The swapper runs in its own process, so that the swaps land at any point of what the test calls."""
        stop = self.spare / "stop"
        stop.unlink(missing_ok=True)
        swapper = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SWAPPER,
                str(self.context / "d"),
                str(self.spare / "d.dir"),
                str(self.spare / "d.link"),
                str(stop),
            ],
            stdout=subprocess.PIPE,
        )
        try:
            yield
        finally:
            stop.touch()
            output, _ = swapper.communicate(timeout=60)
        assert swapper.returncode == 0
        assert int(output) > 0
        assert (self.context / "d").is_dir() and not (self.context / "d").is_symlink()


@pytest.fixture
def racing(tmp_path: Path) -> RacingContext:
    secret = b"SECRET-" + secrets.token_hex(16).encode()
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "f").write_bytes(secret)  # the same names as inside d: a read through the symlink would pick them up
    (outside / "sub" / "g").write_bytes(secret)
    (outside / "only-outside").write_bytes(secret)
    context = tmp_path / "context"
    (context / "d" / "sub").mkdir(parents=True)
    (context / "d" / "f").write_bytes(b"inside\n")
    (context / "d" / "sub" / "g").write_bytes(b"inside too\n")
    (context / "top").write_bytes(b"top\n")
    spare = tmp_path / "spare"
    spare.mkdir()
    (spare / "d.link").symlink_to(outside)
    return RacingContext(context, secret, spare)


def _files_holding(root: Path, secret: bytes) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink() and secret in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return found


def _check_failures(failures: list[BaseException]) -> None:
    foreign = [f"{type(error).__name__}: {error}" for error in failures if not isinstance(error, BuildError)]
    assert not foreign, "\n".join(foreign)


def test_copy_never_reads_outside_the_context(racing: RacingContext, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    outcomes: Counter[str] = Counter()
    failures: list[BaseException] = []
    deadline = time.monotonic() + 8
    with racing.swapping():
        while time.monotonic() < deadline or outcomes.total() < 200:
            for src in SOURCES:
                dest.mkdir()
                action = CopyAction(source=CTX, src=src, dest="/x/", dest_is_dir=True, chown=Chown("0", "0"))
                try:
                    apply_actions(dest, {str(CTX): racing.context}, [action])
                except Exception as error:  # noqa: BLE001 - checked below: only the project's errors may come out
                    failures.append(error)
                    outcomes[f"{src} {type(error).__name__}"] += 1
                else:
                    outcomes[f"{src} copied"] += 1
                assert _files_holding(dest, racing.secret) == [], outcomes
                shutil.rmtree(dest)
    _check_failures(failures)
    assert outcomes[". copied"] > 0, outcomes  # the race did not stop every copy


def test_checksums_never_read_outside_the_context(racing: RacingContext, tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    # Every file a checksum reads goes into the stat cache with its content digest, under its path in the context.
    keys = [str(racing.context / "d" / name) for name in ("f", "sub/g", "only-outside")]
    secret_digest = blake3.blake3(racing.secret).hexdigest()
    outcomes: Counter[str] = Counter()
    failures: list[BaseException] = []
    deadline = time.monotonic() + 4
    with racing.swapping():
        while time.monotonic() < deadline or outcomes.total() < 200:
            for src in SOURCES:
                hasher = ContextHasher(racing.context, store)  # a new one each time: it remembers its results
                try:
                    hasher.checksum(CopyAction(source=CTX, src=src, dest="/x/"))
                except Exception as error:  # noqa: BLE001 - checked below
                    failures.append(error)
                    outcomes[f"{src} {type(error).__name__}"] += 1
                else:
                    outcomes[f"{src} hashed"] += 1
                hashed = store.stat_cache.get(keys)
                assert [key for key, row in hashed.items() if row[4] == secret_digest] == [], outcomes
    _check_failures(failures)
    assert store.stat_cache.get(keys), outcomes


def test_builds_never_copy_from_outside_the_context(racing: RacingContext, tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    outcomes: Counter[str] = Counter()
    failures: list[BaseException] = []
    deadline = time.monotonic() + 8
    with racing.swapping():
        while time.monotonic() < deadline or outcomes.total() < 10:
            for src in SOURCES:
                try:
                    result = build(
                        racing.context,
                        dockerfile_text=f"FROM scratch\nCOPY {src} /x/\n".encode(),
                        store=store,
                        no_cache=True,
                    )
                except Exception as error:  # noqa: BLE001 - checked below
                    failures.append(error)
                    outcomes[f"{src} {type(error).__name__}"] += 1
                    continue
                outcomes[f"{src} built"] += 1
                for diff_id in result.config.diff_ids:
                    with store.layers.open(diff_id) as layer:
                        assert racing.secret not in layer.read(), outcomes
    _check_failures(failures)
    assert outcomes[". built"] > 0, outcomes
