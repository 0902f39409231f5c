"""The context checksum of a COPY source, read in batches through folder descriptors with a stat cache: it must be
the checksum of what the source holds now, whatever the cache remembers. Each is compared with the checksum worked
out here from the files themselves, on a source larger than one batch, with a file large enough for blake3's own
threads, and after each kind of change: a byte with the size and mtime put back, a mode, a new file, a new file the
rules leave out."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import blake3
import pytest

from buildkit_py.context import hashing
from buildkit_py.context.dockerignore import IgnoreRules
from buildkit_py.context.hashing import ContextHasher
from buildkit_py.digest import Digest
from buildkit_py.errors import ContextError
from buildkit_py.fs.beneath import RootDir
from buildkit_py.solver.ops import CopyAction
from buildkit_py.store import Store

CTX = Digest("blake3", "c" * 64)
EXCLUDE = ("src/*.tmp", "scratch")


def _action(src: str = "src") -> CopyAction:
    return CopyAction(source=CTX, src=src, dest="/dest", exclude=EXCLUDE)


def _expected(context: Path, src: str) -> Digest:
    """The checksum as the module's docstring defines it, from a plain os.walk of the source."""
    rules = IgnoreRules(EXCLUDE)
    hasher = blake3.blake3()
    base = context / src

    def visit(folder: Path) -> None:
        for name in sorted(os.listdir(folder)):
            path = folder / name
            relpath = path.relative_to(context).as_posix()
            if rules.excludes(relpath):
                continue
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                payload, size = blake3.blake3(path.read_bytes()).hexdigest(), info.st_size
            elif stat.S_ISLNK(info.st_mode):
                payload, size = os.readlink(path), 0
            else:
                payload, size = "", 0
            record = (
                f"{relpath}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode)}\0{info.st_uid}\0"
                f"{info.st_gid}\0{size}\0{payload}\n"
            )
            hasher.update(record.encode("utf-8", "surrogateescape"))
            if stat.S_ISDIR(info.st_mode):
                visit(path)

    visit(base)
    return Digest("blake3", hasher.hexdigest())


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "context"
    for folder in range(6):
        (root / "src" / f"d{folder}").mkdir(parents=True)
        for index in range(1000):  # 6,000 files: more than one batch
            (root / "src" / f"d{folder}" / f"f{index:04d}.txt").write_bytes(b"%d %d\n" % (folder, index) * 3)
    (root / "src" / "big.bin").write_bytes(bytes(range(256)) * (5 << 12))  # 5 MiB: hashed by blake3's threads
    (root / "src" / "empty").write_bytes(b"")
    (root / "src" / "link").symlink_to("d0/f0000.txt")
    (root / "src" / "x.tmp").write_text("left out\n")
    (root / "scratch").mkdir()
    return root


def _checksum(context: Path, store: Store, src: str = "src") -> hashing.Selection:
    return ContextHasher(context, store).checksum(_action(src))


def test_the_checksum_is_the_one_worked_out_from_the_files(context: Path, tmp_path: Path) -> None:
    assert (context / "src" / "big.bin").stat().st_size >= hashing._BIG
    store = Store(tmp_path / "root")
    cold = _checksum(context, store)
    assert cold.digest == _expected(context, "src")
    assert len(cold.files) == 6 + 6000 + 3
    assert "src/x.tmp" not in cold.files
    warm = _checksum(context, store)  # every content digest from the stat cache now
    assert warm.digest == cold.digest and warm.files == cold.files


@pytest.mark.parametrize("change", ["a byte", "a byte of the big file", "a mode", "a new file", "a left-out file"])
def test_every_change_is_seen_through_a_warm_stat_cache(context: Path, tmp_path: Path, change: str) -> None:
    store = Store(tmp_path / "root")
    before = _checksum(context, store)
    changed = None
    if change in ("a byte", "a byte of the big file"):
        changed = context / "src" / ("d3/f0500.txt" if change == "a byte" else "big.bin")
        info = changed.stat()
        data = bytearray(changed.read_bytes())
        data[len(data) // 2] ^= 1
        changed.write_bytes(data)
        os.utime(changed, ns=(info.st_atime_ns, info.st_mtime_ns))  # same size, same mtime: only ctime tells
        assert changed.stat().st_size == info.st_size
    elif change == "a mode":
        changed = context / "src" / "d5" / "f0999.txt"
        changed.chmod(0o755)
    elif change == "a new file":
        changed = context / "src" / "d0" / "new.txt"
        changed.write_text("new\n")
    else:
        (context / "src" / "y.tmp").write_text("left out too\n")
        (context / "scratch" / "more").write_text("never read\n")
    after = _checksum(context, store)
    assert after.digest == _expected(context, "src")
    if changed is None:
        assert after.digest == before.digest
    else:
        assert after.digest != before.digest
        relpath = changed.relative_to(context).as_posix()
        assert [path for path in after.files if before.files.get(path) != after.files[path]] == [relpath]


def test_a_file_swapped_for_a_symlink_or_a_fifo_after_the_walk_is_an_error(context: Path) -> None:
    """What the walk found is what is read: a file that has become something else fails the checksum."""
    with RootDir(context) as root:
        assert hashing._hash_run(root, [("src/d0/f0001.txt", 6)]) == [blake3.blake3(b"0 1\n" * 3).hexdigest()]
        os.unlink(context / "src" / "d0" / "f0002.txt")
        (context / "src" / "d0" / "f0002.txt").symlink_to("/etc/passwd")
        with pytest.raises(ContextError, match="f0002.txt changed during the build: a symlink appeared"):
            hashing._hash_run(root, [("src/d0/f0001.txt", 6), ("src/d0/f0002.txt", 6)])
        os.unlink(context / "src" / "d0" / "f0003.txt")
        os.mkfifo(context / "src" / "d0" / "f0003.txt")
        with pytest.raises(ContextError, match="f0003.txt changed during the build: it was removed or replaced"):
            hashing._hash_run(root, [("src/d0/f0003.txt", 6)])
        shutil.rmtree(context / "src" / "d1")
        (context / "src" / "d1").symlink_to(context / "src" / "d2")
        with pytest.raises(ContextError, match="d1/f0000.txt changed during the build"):
            hashing._hash_run(root, [("src/d1/f0000.txt", 6)])
