"""pybuild import: a rootfs tarball (as debootstrap makes them: device nodes, hard links, setuid files, `./` names)
becomes a one-layer image; --change lines set its config as `docker import --change` does; FROM it builds."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from archive_helpers import BUSYBOX, info, inventory, sha256, tar_bytes, tmp_is_empty

from buildkit_py.cli.main import main
from buildkit_py.errors import InstructionError, LayerError
from buildkit_py.frontend.changes import apply_changes
from buildkit_py.image.config import ContainerConfig
from buildkit_py.image.importer import import_rootfs
from buildkit_py.image.manifest import host_platform, machine_platform
from buildkit_py.image.stored import image_config
from buildkit_py.layer.snapshots import snapshot_path
from buildkit_py.store import Store

AS_ROOT = os.geteuid() == 0


def rootfs_tar() -> bytes:
    """A small root filesystem in debootstrap's style: every name starts with `./`, the root has an entry."""
    busybox = BUSYBOX.read_bytes()
    null = info("./dev/null", tarfile.CHRTYPE, 0o666)
    null.devmajor, null.devminor = 1, 3
    sda = info("./dev/sda", tarfile.BLKTYPE, 0o660, gid=6)
    sda.devmajor, sda.devminor = 8, 0
    return tar_bytes(
        [
            info("./", tarfile.DIRTYPE, 0o755),
            info("./bin/", tarfile.DIRTYPE, 0o755),
            (info("./bin/busybox", mode=0o755), busybox),
            info("./bin/sh", tarfile.LNKTYPE, 0o755, link="./bin/busybox"),
            info("./bin/cat", tarfile.SYMTYPE, 0o777, link="busybox"),
            info("./dev/", tarfile.DIRTYPE, 0o755),
            null,
            sda,
            info("./etc/", tarfile.DIRTYPE, 0o755),
            (info("./etc/os-release"), b"ID=pybuild\n"),
            info("./tmp/", tarfile.DIRTYPE, 0o1777),
            info("./usr/bin/", tarfile.DIRTYPE, 0o755),
            (info("./usr/bin/passwd", mode=0o4755), b"#!/bin/sh\n"),
            (info("./usr/bin/wall", mode=0o2755, gid=5), b"#!/bin/sh\n"),
        ]
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.mark.parametrize("compress", [False, True])
def test_import_keeps_the_tar_and_unpacks_it_faithfully(store: Store, tmp_path: Path, compress: bool) -> None:
    data = rootfs_tar()
    path = tmp_path / ("rootfs.tar.gz" if compress else "rootfs.tar")
    path.write_bytes(gzip.compress(data) if compress else data)
    image_id = import_rootfs(store, path, "pybuild-test/rootfs:1")
    assert store.resolve("pybuild-test/rootfs:1") == image_id
    config = image_config(store, image_id)
    assert config.diff_ids == (sha256(data),)
    with store.layers.open(sha256(data)) as layer:
        assert layer.read() == data  # the uncompressed tar, byte for byte
    (entry,) = config.history
    assert entry.comment == f"Imported from {path}" and entry.created == config.created
    raw = json.loads(store.images.config_bytes(image_id))
    assert raw["os"] == "linux" and raw["architecture"] == "amd64"
    root = snapshot_path(store, sha256(data))
    assert (root / "bin" / "sh").stat().st_ino == (root / "bin" / "busybox").stat().st_ino
    assert os.readlink(root / "bin" / "cat") == "busybox"
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((root / "usr" / "bin" / "passwd").stat().st_mode) == 0o4755
    wall = (root / "usr" / "bin" / "wall").stat()
    assert stat.S_IMODE(wall.st_mode) == 0o2755
    if AS_ROOT:
        assert wall.st_gid == 5
        null = (root / "dev" / "null").stat()
        assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
        assert stat.S_ISBLK((root / "dev" / "sda").stat().st_mode)
    assert tmp_is_empty(store)


@pytest.mark.parametrize(
    ("machine", "platform"),
    [
        ("x86_64", "linux/amd64"),
        ("aarch64", "linux/arm64"),
        ("armv7l", "linux/arm/v7"),
        ("armv6l", "linux/arm/v6"),
        ("i686", "linux/386"),
        ("i386", "linux/386"),
        ("ppc64le", "linux/ppc64le"),
        ("s390x", "linux/s390x"),
        ("riscv64", "linux/riscv64"),
        ("mips64", "linux/mips64"),
    ],
)
def test_machine_names_become_oci_platforms(machine: str, platform: str) -> None:
    assert str(machine_platform(machine)) == platform


def test_an_imported_image_names_the_host_platform(store: Store) -> None:
    host = host_platform()
    config = image_config(store, import_rootfs(store, io.BytesIO(rootfs_tar())))
    assert (config.os, config.architecture, config.variant) == (host.os, host.architecture, host.variant)


def test_import_from_a_stream_untagged(store: Store) -> None:
    image_id = import_rootfs(store, io.BytesIO(rootfs_tar()))
    assert store.tags.of(image_id) == []
    assert image_config(store, image_id).history[0].comment == "Imported from -"


def test_changes_as_docker_import_applies_them() -> None:
    config = apply_changes(
        ContainerConfig(),
        [
            'CMD ["/bin/sh", "-c", "echo hi"]',
            "ENTRYPOINT /bin/init --flag",
            "ENV PATH=/usr/bin:/bin LANG=C.UTF-8",
            "ENV HOME=/root",
            "WORKDIR $HOME",
            "WORKDIR work",
            "EXPOSE 80 53/udp 8000-8001",
            "USER daemon:daemon",
            'LABEL org.example.name="a b" other=1',
            'VOLUME ["/data", "/logs"]',
            "HEALTHCHECK --interval=5s CMD true",
            "ONBUILD RUN echo child",
        ],
    )
    assert config.cmd == ("/bin/sh", "-c", "echo hi")
    assert config.entrypoint == ("/bin/sh", "-c", "/bin/init --flag")
    assert config.env == ("PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/root")
    assert config.working_dir == "/root/work"
    assert config.exposed_ports == ("53/udp", "80/tcp", "8000/tcp", "8001/tcp")
    assert config.user == "daemon:daemon"
    assert dict(config.labels) == {"org.example.name": "a b", "other": "1"}
    assert config.volumes == ("/data", "/logs")
    assert config.healthcheck is not None and config.healthcheck.test == ("CMD-SHELL", "true")
    assert config.on_build == ("RUN echo child",)


@pytest.mark.parametrize(
    "change",
    [
        "RUN echo hi",
        "FROM busybox",
        "COPY a b",
        "ADD a b",
        "ARG X=1",
        "STOPSIGNAL SIGINT",
        'SHELL ["/bin/bash", "-c"]',
        "MAINTAINER me",
    ],
)
def test_changes_docker_import_does_not_allow(change: str) -> None:
    """Docker 20.10 allows neither STOPSIGNAL nor SHELL in --change (`docker import` says so)."""
    keyword = change.split()[0].lower()
    with pytest.raises(InstructionError) as caught:
        apply_changes(ContainerConfig(), ["ENV A=1", change])
    assert caught.value.message == f"{keyword} is not a valid change command"
    assert caught.value.location is not None and caught.value.location.start_line == 2


def test_hostile_rootfs_is_refused_and_nothing_stored(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = tar_bytes(
        [
            info("./", tarfile.DIRTYPE, 0o755),
            info("./escape", tarfile.SYMTYPE, 0o777, link=str(outside)),
            (info("./escape/pwned"), b"pwned"),
        ]
    )
    before = inventory(store)
    with pytest.raises(LayerError):
        import_rootfs(store, io.BytesIO(hostile), "evil/rootfs:1")
    assert list(outside.iterdir()) == []
    assert inventory(store) == before and tmp_is_empty(store)


def test_cli_import(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rootfs.tar.gz"
    path.write_bytes(gzip.compress(rootfs_tar()))
    status = main(
        [
            "--root",
            str(store.root),
            "import",
            "--change",
            'CMD ["/bin/sh"]',
            "-c",
            "ENV A=1",
            str(path),
            "pybuild-test/cli-import:1",
        ]
    )
    assert status == 0
    image_id = capsys.readouterr().out.strip()
    assert str(store.resolve("pybuild-test/cli-import:1")) == image_id
    config = image_config(store, store.resolve(image_id)).config
    assert config.cmd == ("/bin/sh",) and config.env == ("A=1",)
    before = inventory(store)
    for change, message in (
        ("RUN x", "--change:1: run is not a valid change command"),
        ("STOPSIGNAL FOO", "--change:1: stopsignal is not a valid change command"),
        ("ENV =x", "--change:1: ENV: ENV names can not be blank"),
        ("EXPOSE 99999", "--change:1: EXPOSE: Invalid containerPort: 99999"),
    ):
        assert main(["--root", str(store.root), "import", "--change", change, str(path)]) == 1
        assert capsys.readouterr().err.startswith(f"error: {message}\n")
    assert inventory(store) == before


def test_build_from_an_imported_rootfs(store: Store, tmp_path: Path) -> None:
    from buildkit_py.builder import build

    config = apply_changes(ContainerConfig(), ['CMD ["/bin/sh"]'])
    import_rootfs(store, io.BytesIO(rootfs_tar()), "pybuild-test/imported:1", config=config)
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        'FROM pybuild-test/imported:1\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox cat /etc/os-release > /copied"]\n'
    )
    result = build(context, tags=["pybuild-test/on-imported:1"], store=store)
    config = result.config
    assert config.diff_ids[0] == image_config(store, store.resolve("pybuild-test/imported:1")).diff_ids[0]
    assert len(config.diff_ids) == 2 and config.config.cmd == ("/bin/sh",)
    top = snapshot_path(store, config.diff_ids[-1])
    assert (top / "copied").read_text() == "ID=pybuild\n"
