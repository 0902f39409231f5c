"""Mount targets a hostile container controls: its own read-write layer between runs, and a volume another running
container shares. Every mount must land beneath the container's root, and nothing may be made outside it: targets
are resolved inside the root (the container's symlinks followed there) and then opened by descriptor without
following any symlink (container/paths.py, mounts.py)."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_helpers import Pybuild, build_base, unique, wait_until
from helpers import BASE_IMAGE

from buildkit_py.container import paths
from buildkit_py.container.paths import open_in_root
from buildkit_py.container.volumes import fill_volume
from buildkit_py.fs import beneath

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, overlay)")


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pybuild]:
    root = tmp_path_factory.mktemp("mount-attacks-root")
    build_base(root, tmp_path_factory.mktemp("base"))
    pybuild = Pybuild(root)
    yield pybuild
    pybuild.remove_all()


@pytest.fixture
def host_target() -> Iterator[Path]:
    """A folder on the host, named so nothing else uses it, that an attack tries to make a mount land in."""
    path = Path("/tmp") / f"pybuild-attack-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    yield path
    for child in sorted(path.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
    path.rmdir()


# -- open_in_root: the resolution itself, on plain folders ----------------------------------------------------------


@pytest.fixture(params=["openat2", "stepwise"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stepwise":
        monkeypatch.setattr(beneath, "_openat2_missing", True)
    return str(request.param)


def _where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_targets_resolve_inside_the_root_and_missing_folders_are_made(tmp_path: Path, way: str) -> None:
    root = tmp_path / "root"
    (root / "real" / "deep").mkdir(parents=True)
    (root / "abs").symlink_to("/real")  # absolute: the container's /real, not the host's
    (root / "up").symlink_to("../../../../real")  # climbs no higher than the root
    (root / "host").symlink_to(tmp_path)  # the host's folder above the root: inside, it names /<that path>
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        assert _where(open_in_root(root_fd, root, "/abs/deep")) == str(root / "real" / "deep")
        assert _where(open_in_root(root_fd, root, "/up/new/er")) == str(root / "real" / "new" / "er")
        assert _where(open_in_root(root_fd, root, "/host/x")) == str(root / tmp_path.relative_to("/") / "x")
        assert _where(open_in_root(root_fd, root, "/file", make="file")) == str(root / "file")
        assert (root / "file").is_file()
        with pytest.raises(FileNotFoundError):
            open_in_root(root_fd, root, "/absent", make=None)
    finally:
        os.close(root_fd)
    assert not (tmp_path / "x").exists()


def _swap_after_resolution(monkeypatch: pytest.MonkeyPatch, path: Path, link_target: Path) -> None:
    """Replace the folder `path` by a symlink to `link_target` right after the target is resolved: the race a
    volume shared with a running container allows, made certain."""
    resolve = paths.resolve_in_root

    def resolve_then_swap(base: Path, container_path: str, follow_final: bool = True) -> Path:
        resolved = resolve(base, container_path, follow_final)
        path.rename(path.with_name(path.name + "-moved"))
        path.symlink_to(link_target)
        return resolved

    monkeypatch.setattr(paths, "resolve_in_root", resolve_then_swap)


def test_a_folder_swapped_for_a_symlink_after_resolution_is_refused(
    tmp_path: Path, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    (root / "vol" / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    _swap_after_resolution(monkeypatch, root / "vol" / "sub", outside)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            open_in_root(root_fd, root, "/vol/sub/mnt", make="dir")
        assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    finally:
        os.close(root_fd)
    assert list(outside.iterdir()) == []


def test_a_target_swapped_for_a_symlink_after_resolution_is_refused(
    tmp_path: Path, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    (root / "vol" / "mnt").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    _swap_after_resolution(monkeypatch, root / "vol" / "mnt", outside)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            open_in_root(root_fd, root, "/vol/mnt", make="dir")
        assert caught.value.errno == errno.ELOOP
    finally:
        os.close(root_fd)


def test_a_dangling_symlink_target_is_made_inside_the_root(tmp_path: Path, way: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "dangling").symlink_to("/nowhere/at/all")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        assert _where(open_in_root(root_fd, root, "/dangling", make="file")) == str(root / "nowhere" / "at" / "all")
    finally:
        os.close(root_fd)
    assert (root / "nowhere" / "at" / "all").is_file()


def test_filling_a_volume_copies_links_as_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "file").write_text("image content\n")
    (root / "data" / "link").symlink_to("/etc/passwd")
    (root / "data" / "sub" / "inner").write_text("inner\n")
    (root / "alias").symlink_to("data")
    volume = tmp_path / "volume"
    volume.mkdir()
    fill_volume(root, "/alias", volume)
    assert (volume / "file").read_text() == "image content\n"
    assert os.readlink(volume / "link") == "/etc/passwd"
    assert (volume / "sub" / "inner").read_text() == "inner\n"
    (root / "data" / "later").write_text("not copied: the volume is no longer empty\n")
    fill_volume(root, "/data", volume)
    assert not (volume / "later").exists()


# -- containers ----------------------------------------------------------------------------------------------------


@root_only
def test_a_mountpoint_parent_replaced_by_a_symlink_between_runs(pb: Pybuild, host_target: Path) -> None:
    """The container turns the parent of its volume's mountpoint into a symlink to /, and the parent of a bind's
    into one to a host folder; after a restart both are mounted inside its root, where those symlinks lead when
    followed there, and nothing appears on the host."""
    name, volume, leaf = unique(), unique("vol"), f"leaf-{uuid.uuid4().hex[:8]}"
    bound = host_target.parent / f"{host_target.name}-bind"
    bound.mkdir()
    (bound / "token").write_text("bound\n")
    script = (
        f"if [ -L /a/b ]; then cat /{leaf}/f {host_target}/{leaf}/token; "
        f"else echo in-volume > /a/b/{leaf}/f; mv /a/b /a/b2; ln -s / /a/b; mv /c/d /c/d2; ln -s {host_target} /c/d; fi"
    )
    try:
        pb.ok("run", "--name", name, "-v", f"{volume}:/a/b/{leaf}", "-v", f"{bound}:/c/d/{leaf}", BASE_IMAGE,
              "sh", "-c", script)  # fmt: skip
        assert pb.ok("start", "-a", name) == "in-volume\nbound\n"
        assert not Path("/", leaf).exists()
        assert list(host_target.iterdir()) == []
        assert [path.name for path in bound.iterdir()] == ["token"]
    finally:
        pb.run("rm", "-v", name)
        pb.run("volume", "rm", volume)
        (bound / "token").unlink()
        bound.rmdir()


@root_only
def test_a_shared_volume_flipped_to_a_symlink_while_containers_start(pb: Pybuild, host_target: Path) -> None:
    """One container keeps turning a folder of a volume it shares into a symlink to a host folder and back; others
    start with a bind mounted inside that folder. Each either starts with its bind where it belongs or refuses to
    start; none makes anything on the host."""
    attacker, volume = unique(), unique("vol")
    secret = host_target.parent / f"{host_target.name}-bind"
    secret.mkdir()
    (secret / "token").write_text("bound\n")
    try:
        pb.ok("run", "-d", "--name", attacker, "-v", f"{volume}:/data", BASE_IMAGE, "sh", "-c",
              f"while true; do mkdir -p /data/sub; mv /data/sub /data/real; ln -s {host_target} /data/sub; "
              "rm /data/sub; mv /data/real /data/sub; done")  # fmt: skip
        assert wait_until(lambda: pb.run("exec", attacker, "ls", "/data").stdout != "")
        started = refused = 0
        for _ in range(12):
            result = pb.run("run", "--rm", "-v", f"{volume}:/data", "-v", f"{secret}:/data/sub/mnt:ro", BASE_IMAGE,
                            "cat", "/data/sub/mnt/token")  # fmt: skip
            if result.returncode == 0:
                assert result.stdout == "bound\n"
                started += 1
            elif result.returncode == 125:
                assert "cannot mount on /data/sub/mnt" in result.stderr, result.stderr
                refused += 1
            else:  # mounted in the folder as it was opened, which the attacker has renamed meanwhile
                assert result.returncode == 1 and "can't open" in result.stderr, result.stderr
        assert started + refused <= 12
        assert list(host_target.iterdir()) == []
        assert (secret / "token").read_text() == "bound\n" and [p.name for p in secret.iterdir()] == ["token"]
    finally:
        pb.run("rm", "-f", "-v", attacker)
        pb.run("volume", "rm", volume)
        (secret / "token").unlink()
        secret.rmdir()
