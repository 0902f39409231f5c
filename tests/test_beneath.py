"""Opening paths beneath a root without following any symlink (`fs.beneath`), with openat2 and with the
component-by-component walk used where the kernel lacks it: both must refuse and accept exactly the same paths."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildkit_py.context.hashing import hash_file
from buildkit_py.context.select import select_sources, walk_tree
from buildkit_py.errors import ContextError
from buildkit_py.fs import beneath
from buildkit_py.fs.beneath import RootDir, open_beneath


@pytest.fixture(params=["openat2", "stepwise"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with openat2 and again with the walk that stands in for it on kernels without it."""
    if request.param == "stepwise":
        monkeypatch.setattr(beneath, "_openat2_missing", True)
    return str(request.param)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret\n")
    root = tmp_path / "root"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "f").write_text("inside\n")
    (root / "d" / "sub" / "g").write_text("deeper\n")
    (root / "abs").symlink_to(outside)  # absolute, out of the root
    (root / "abs-in").symlink_to("/d")  # absolute, would be inside after a chroot: still a symlink, still refused
    (root / "up").symlink_to("../outside")
    (root / "dotdot").symlink_to("..")
    (root / "loop").symlink_to("loop")
    (root / "loop-a").symlink_to("loop-b")
    (root / "loop-b").symlink_to("loop-a")
    (root / "rel").symlink_to("d")  # relative and inside: refused too, the caller resolves symlinks itself
    (root / "magic").symlink_to("/proc/self/root")
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def root(tree: Path) -> Iterator[RootDir]:
    with RootDir(tree) as opened:
        yield opened


def _errno(call: object, *args: object) -> int:
    with pytest.raises(OSError) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.errno is not None
    return caught.value.errno


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_openat2_is_what_this_kernel_uses(root: RootDir) -> None:
    os.close(root.open("d/f", os.O_RDONLY))
    assert not beneath._openat2_missing  # Linux >= 5.6: the fallback is for older kernels only


# A child process under a seccomp filter that answers openat2 (437) with the given errno and allows every other call:
# what a kernel without openat2, or an older container runtime, looks like to us.
_WITHOUT_OPENAT2 = """
import ctypes, errno, os, struct, sys
code, root = int(sys.argv[1]), sys.argv[2]
program = [
    (0x20, 0, 0, 0),  # load the syscall number
    (0x15, 0, 1, 437),  # openat2? next instruction, else skip one
    (0x06, 0, 0, 0x00050000 | code),  # SECCOMP_RET_ERRNO | code
    (0x06, 0, 0, 0x7FFF0000),  # SECCOMP_RET_ALLOW
]
instructions = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *step) for step in program))
class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(Program(len(program), ctypes.addressof(instructions))), 0, 0) == 0
from buildkit_py.fs import beneath
with beneath.RootDir(root) as tree:
    print(os.read(tree.open_file("d/f"), 100).decode().strip())
    for path in ("abs/secret", "up/secret", "rel/f", "magic/etc/passwd"):
        try:
            tree.open(path, os.O_RDONLY)
        except OSError as error:
            print(path, errno.errorcode[error.errno])
print("fallback" if beneath._openat2_missing else "openat2")
"""


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM])
def test_without_openat2_the_walk_takes_over(tree: Path, code: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OPENAT2, str(code), str(tree)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "inside",
        "abs/secret ELOOP",
        "up/secret ELOOP",
        "rel/f ELOOP",
        "magic/etc/passwd ELOOP",
        "fallback",
    ]


def test_plain_paths_open(way: str, root: RootDir) -> None:
    assert _read(root.open_file("d/f")) == b"inside\n"
    assert _read(root.open_file("d//sub/./g")) == b"deeper\n"
    assert stat.S_ISDIR(root.lstat("").st_mode) and stat.S_ISDIR(root.lstat("d/sub").st_mode)
    assert [name for name, _ in root.scan("d")] == ["f", "sub"]
    assert sorted(root.listdir("")) == sorted(os.listdir(root.path))


@pytest.mark.parametrize("path", ["abs/secret", "up/secret", "dotdot/outside/secret", "abs-in/f", "rel/f"])
def test_a_symlink_on_the_way_is_refused(way: str, root: RootDir, path: str) -> None:
    assert _errno(root.open, path, os.O_RDONLY) == errno.ELOOP
    assert _errno(root.lstat, path) == errno.ELOOP
    assert _errno(root.open, path, os.O_PATH) == errno.ELOOP


@pytest.mark.parametrize("path", ["abs", "up", "dotdot", "loop", "rel", "magic"])
def test_a_final_symlink_is_the_link_itself(way: str, root: RootDir, path: str) -> None:
    assert _errno(root.open, path, os.O_RDONLY) == errno.ELOOP
    assert stat.S_ISLNK(root.lstat(path).st_mode)
    assert root.readlink(path) == os.readlink(Path(root.path, path))
    assert _errno(root.scan, path) == errno.ENOTDIR  # opening it as a directory fails as open(2) does


def test_symlink_loops_fail_without_hanging(way: str, root: RootDir) -> None:
    assert _errno(root.open, "loop/x", os.O_RDONLY) == errno.ELOOP
    assert _errno(root.open, "loop-a/loop-b/x", os.O_RDONLY) == errno.ELOOP
    assert stat.S_ISLNK(root.lstat("loop-a").st_mode)


@pytest.mark.parametrize("path", ["..", "../outside/secret", "d/../../outside/secret", "d/../f", "/etc/passwd"])
def test_dotdot_and_absolute_paths_are_refused(way: str, root: RootDir, path: str) -> None:
    assert _errno(root.open, path, os.O_RDONLY) == errno.EXDEV


def test_magic_links_are_refused(way: str, root: RootDir) -> None:
    assert _errno(root.open, "magic/etc/passwd", os.O_RDONLY) == errno.ELOOP
    with RootDir("/proc/self") as proc:
        assert _errno(proc.open, "root/etc/passwd", os.O_RDONLY) == errno.ELOOP
        assert _errno(proc.open, "cwd", os.O_RDONLY | os.O_DIRECTORY) == errno.ENOTDIR
        assert _errno(proc.open, f"fd/{root.fd}/d/f", os.O_RDONLY) == errno.ELOOP
        assert stat.S_ISLNK(proc.lstat("exe").st_mode)
    with RootDir("/proc/self/fd") as fds:
        assert _errno(fds.open, str(root.fd), os.O_RDONLY) == errno.ELOOP


def test_open_file_takes_regular_files_only(way: str, root: RootDir) -> None:
    assert _errno(root.open_file, "fifo") == errno.EINVAL  # and does not hang waiting for a writer
    assert _errno(root.open_file, "d") == errno.EISDIR
    assert _errno(root.open_file, "rel") == errno.ELOOP
    assert _errno(root.open_file, "missing") == errno.ENOENT
    assert _errno(root.open_file, "d/f/x") == errno.ENOTDIR


def test_a_component_swapped_for_a_symlink_after_resolution_is_refused(
    way: str, tree: Path, root: RootDir, tmp_path: Path
) -> None:
    (selected,) = select_sources(root, "d", allow_wildcard=False, follow_symlinks=True, exclude=None)
    entries = dict(walk_tree(root, selected, None))
    assert list(entries) == ["d/f", "d/sub", "d/sub/g"]
    held = root.open("d/sub", os.O_RDONLY | os.O_DIRECTORY)
    try:
        # The swap: d is now a symlink to a folder outside holding the same names.
        os.rename(tree / "d", tmp_path / "d-moved")
        (tmp_path / "fake" / "sub").mkdir(parents=True)
        (tmp_path / "fake" / "f").write_text("secret\n")
        (tmp_path / "fake" / "sub" / "g").write_text("secret\n")
        (tree / "d").symlink_to(tmp_path / "fake")
        for relpath in entries:
            assert _errno(root.open, relpath, os.O_RDONLY) == errno.ELOOP
            assert _errno(root.lstat, relpath) == errno.ELOOP
        assert _errno(root.scan, "d/sub") == errno.ELOOP
        with pytest.raises(ContextError, match=r"^d/f changed during the build: a symlink appeared on its path$"):
            hash_file(root, "d/f")
        with pytest.raises(ContextError, match=r"^d changed during the build"):
            list(walk_tree(root, selected, None))
        # What was opened before the swap still reads the directory it opened, which is not outside.
        assert os.listdir(held) == ["g"]
    finally:
        os.close(held)
    # The same swap one level down, and back to a directory: readable again.
    (tree / "d").unlink()
    os.rename(tmp_path / "d-moved", tree / "d")
    os.rename(tree / "d" / "sub", tmp_path / "sub-moved")
    (tree / "d" / "sub").symlink_to(tmp_path / "fake" / "sub")
    assert _errno(root.open, "d/sub/g", os.O_RDONLY) == errno.ELOOP
    (tree / "d" / "sub").unlink()
    os.rename(tmp_path / "sub-moved", tree / "d" / "sub")
    assert _read(root.open_file("d/sub/g")) == b"deeper\n"


def test_no_descriptor_is_left_open(way: str, tree: Path) -> None:
    before = sorted(os.listdir("/proc/self/fd"))
    with RootDir(tree) as root:
        for path in ["d/f", "d/sub/g", "abs/secret", "loop/x", "..", "missing/x", "d/f/x", "rel", "fifo"]:
            for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_PATH, os.O_RDONLY | os.O_DIRECTORY):
                try:
                    os.close(root.open(path, flags))
                except OSError:
                    pass
        root.scan("d")
        root.lstat("d/sub/g")
        root.readlink("abs")
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_open_beneath_any_directory_descriptor(way: str, tree: Path) -> None:
    fd = os.open(tree / "d", os.O_PATH | os.O_DIRECTORY)
    try:
        assert _read(open_beneath(fd, "sub/g", os.O_RDONLY)) == b"deeper\n"
        assert _errno(open_beneath, fd, "../f", os.O_RDONLY) == errno.EXDEV
    finally:
        os.close(fd)
