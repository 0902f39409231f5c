"""Namespaces of ours let go of other engines' overlay mounts (Docker's container roots), so that an engine's
unmounted layer is not kept "in use" by a sandbox or a container monitor that lives on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_helpers import Pybuild, build_base, unique, wait_until
from helpers import BASE_IMAGE

from buildkit_py.exec import syscalls as sc
from buildkit_py.exec.mountns import MountEntry, foreign_overlays, parse_mountinfo, paths_in
from buildkit_py.exec.overlay import mount_overlay

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")


def test_mountinfo_fields_and_which_overlays_go() -> None:
    text = (
        "27 1 254:0 / / rw,relatime - overlay overlay rw,lowerdir=/l\n"
        "42 27 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "50 42 0:60 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw\n"
        "51 27 0:61 / /work/with\\040space rw master:3 - overlay overlay rw\n"
        "52 27 0:62 / /srv/ctx rw - overlay overlay rw\n"
    )
    entries = parse_mountinfo(text)
    assert entries[3] == MountEntry("/work/with space", "overlay")
    assert entries[1] == MountEntry("/var/lib/docker", "ext4")
    doomed = foreign_overlays(entries, needed=["/srv/ctx/app", "/store/root"])
    assert doomed == ["/var/lib/docker/overlay2/abc/merged", "/work/with space"]  # "/" and /srv/ctx stay


def test_paths_in_finds_paths_in_nested_records() -> None:
    from buildkit_py.exec.executor import RootfsSpec

    spec = RootfsSpec(lowers=(Path("/s/a"), Path("/s/b")), upper=Path("/s/u"), work=Path("/s/w"))
    assert paths_in((spec, {"k": "/x/y"}, ["relative", "/z"])) == {"/s/a", "/s/b", "/s/u", "/s/w", "/x/y", "/z"}


@pytest.fixture
def host_overlay(tmp_path: Path) -> Iterator[Path]:
    """An overlay mounted in this process's namespace, as Docker's container roots are on the host."""
    lower, upper, work, merged = (tmp_path / name for name in ("lower", "upper", "work", "merged"))
    for folder in (lower, upper, work, merged):
        folder.mkdir()
    (lower / "from-lower").write_text("x")
    mount_overlay((lower,), merged, upper, work)
    try:
        yield merged
    finally:
        sc.umount2(merged, sc.MNT_DETACH)


def _mount_points(pid: int | str) -> list[str]:
    return [entry.mount_point for entry in parse_mountinfo(Path(f"/proc/{pid}/mountinfo").read_text())]


def test_a_private_namespace_keeps_only_the_overlays_it_needs(host_overlay: Path, tmp_path: Path) -> None:
    needed = tmp_path / "needed"
    for name in ("lower", "upper", "work", "merged"):
        (needed / name).mkdir(parents=True)
    mount_overlay((needed / "lower",), needed / "merged", needed / "upper", needed / "work")
    try:
        probe = (
            "import os, sys\n"
            "from buildkit_py.exec.mountns import private_mount_namespace, release_foreign_overlays\n"
            "private_mount_namespace()\n"
            "release_foreign_overlays(sys.argv[1])\n"
            "print(open('/proc/self/mountinfo').read())\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe, str(needed / "merged" / "file")],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        inside = [entry.mount_point for entry in parse_mountinfo(result.stdout)]
        assert str(host_overlay) not in inside
        assert str(needed / "merged") in inside
        assert str(host_overlay) in _mount_points("self")  # the host's namespace is untouched
    finally:
        sc.umount2(needed / "merged", sc.MNT_DETACH)


def test_a_container_monitor_holds_no_foreign_overlay(host_overlay: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    build_base(root, tmp_path)
    pb = Pybuild(root)
    name = unique()
    try:
        pb.ok("run", "-d", "--name", name, BASE_IMAGE, "sleep", "60")
        record = json.loads(pb.ok("inspect", name))[0]
        init_pid = int(record["State"]["Pid"])
        status = Path(f"/proc/{init_pid}/status").read_text()
        monitor = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        assert wait_until(lambda: str(root) in "\n".join(_mount_points(monitor)))  # its own mounts are there
        assert str(host_overlay) not in _mount_points(monitor)
        assert str(host_overlay) not in _mount_points(init_pid)
    finally:
        pb.remove_all()


@pytest.fixture
def shared_host_mount(tmp_path: Path) -> Iterator[Path]:
    """A shared mount with a mount beneath it, as Docker keeps /var/lib/docker (shared) and its containers' roots."""
    shared = tmp_path / "shared"
    shared.mkdir()
    sc.mount(shared, shared, None, sc.MS_BIND)
    sc.mount(None, shared, None, sc.MS_SHARED)
    inner = shared / "inner"
    inner.mkdir()
    sc.mount("tmpfs", inner, "tmpfs", 0, "size=1m")
    (inner / "witness").write_text("still here")
    try:
        yield inner
    finally:
        while str(shared) in _mount_points("self"):  # a propagated copy may sit on the same mount point
            sc.umount2(shared, sc.MNT_DETACH)


def test_a_step_with_the_default_network_unmounts_nothing_of_the_hosts(shared_host_mount: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    build_base(root, tmp_path)
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo one > /one\nRUN echo two > /two\n")
    Pybuild(root).ok("build", "-q", "-t", unique(), str(context))
    assert str(shared_host_mount) in _mount_points("self")
    assert (shared_host_mount / "witness").read_text() == "still here"
