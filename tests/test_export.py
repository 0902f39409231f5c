"""build --output: docker and OCI archives, the final filesystem as a tar, and written into a folder safely."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from archive_helpers import BUSYBOX, busybox_layers, flattened_names, info, make_image, tar_bytes

from buildkit_py.errors import LayerError
from buildkit_py.image.export import ExportError, export_image, parse_output_spec
from buildkit_py.image.load import load_archive
from buildkit_py.store import Store

TAG = "pybuild-test/archive:1"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_output_specs() -> None:
    assert parse_output_spec("type=oci,dest=out.tar,compression=zstd") == {
        "type": "oci",
        "dest": "out.tar",
        "compression": "zstd",
    }
    assert parse_output_spec("outdir") == {"type": "local", "dest": "outdir"}
    assert parse_output_spec("-") == {"type": "tar", "dest": "-"}
    for bad in ("type=registry,dest=x", "type=tar", "type=tar,dest=x,oops"):
        with pytest.raises(ExportError):
            parse_output_spec(bad)


def test_flattened_tar_applies_whiteouts_and_opaque_dirs(store: Store, tmp_path: Path) -> None:
    image_id = make_image(store)
    dest = tmp_path / "rootfs.tar"
    export_image(store, image_id, f"type=tar,dest={dest}")
    entries = flattened_names(dest.read_bytes())
    assert sorted(entries) == [
        "bin",
        "bin/busybox",
        "bin/ls",
        "bin/sh",
        "etc",
        "etc/new",
        "opt",
        "opt/fresh",
        "usr",
        "usr/bin",
        "usr/bin/suid",
    ]
    assert entries["bin/ls"].islnk() and entries["bin/ls"].linkname == "bin/busybox"
    assert entries["bin/sh"].issym() and entries["bin/sh"].linkname == "busybox"
    assert stat.S_IMODE(entries["opt"].mode) == 0o700  # the upper layer's directory metadata wins
    assert stat.S_IMODE(entries["usr/bin/suid"].mode) == 0o4755
    with tarfile.open(dest) as archive:
        stream = archive.extractfile("bin/busybox")
        assert stream is not None and stream.read() == BUSYBOX.read_bytes()
    assert not any((store.root / "tmp").iterdir())


def test_flattened_tar_replaces_across_layers(store: Store, tmp_path: Path) -> None:
    layers = [
        tar_bytes([info("a/", tarfile.DIRTYPE, 0o755), (info("a/file"), b"below"), (info("b"), b"file")]),
        tar_bytes([info("a", tarfile.SYMTYPE, 0o777, link="/elsewhere"), info("b/", tarfile.DIRTYPE, 0o755)]),
        tar_bytes([info("b/", tarfile.DIRTYPE, 0o755), (info("b/inside"), b"x")]),
    ]
    image_id = make_image(store, None, layers)
    out = tmp_path / "flat.tar"
    export_image(store, image_id, f"type=tar,dest={out}")
    entries = flattened_names(out.read_bytes())
    assert sorted(entries) == ["a", "b", "b/inside"]
    assert entries["a"].issym() and entries["b"].isdir()


def test_local_output_writes_the_filesystem(store: Store, tmp_path: Path) -> None:
    image_id = make_image(store)
    dest = tmp_path / "out"
    export_image(store, image_id, f"type=local,dest={dest}")
    assert (dest / "bin" / "busybox").read_bytes() == BUSYBOX.read_bytes()
    assert (dest / "bin" / "ls").stat().st_ino == (dest / "bin" / "busybox").stat().st_ino
    assert os.readlink(dest / "bin" / "sh") == "busybox"
    assert not (dest / "etc" / "hello").exists() and (dest / "etc" / "new").read_text() == "new\n"
    assert sorted(p.name for p in (dest / "opt").iterdir()) == ["fresh"]


def test_local_output_does_not_follow_symlinks_already_in_dest(store: Store, tmp_path: Path) -> None:
    image_id = make_image(store)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "etc").symlink_to(outside)
    with pytest.raises(LayerError):
        export_image(store, image_id, f"type=local,dest={dest}")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "spec", ["type=docker,dest={path}", "type=oci,dest={path}", "type=oci,dest={path},compression=zstd"]
)
def test_archive_outputs_load_back(store: Store, tmp_path: Path, spec: str) -> None:
    image_id = make_image(store)
    path = tmp_path / "image.tar"
    export_image(store, image_id, spec.format(path=path))
    other = Store(tmp_path / "other")
    assert load_archive(other, path) == [TAG]
    assert other.resolve(TAG) == image_id


def test_oci_folder_output(store: Store, tmp_path: Path) -> None:
    image_id = make_image(store)
    path = tmp_path / "layout"
    export_image(store, image_id, f"type=oci,dest={path},tar=false")
    assert (path / "index.json").is_file()
    other = Store(tmp_path / "other")
    assert load_archive(other, path) == [TAG] and other.resolve(TAG) == image_id


def test_build_with_outputs(tmp_path: Path) -> None:
    """`pybuild build -o ...` through the command line, on a base loaded from an archive (no pull needed)."""
    root = tmp_path / "root"
    source = Store(tmp_path / "source")
    make_image(source, "pybuild-test/base:1", busybox_layers()[:1])
    archive = io.BytesIO()
    from buildkit_py.image.docker_archive import save_docker_archive

    save_docker_archive(source, ["pybuild-test/base:1"], archive)
    load_archive(Store(root), io.BytesIO(archive.getvalue()))
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        'FROM pybuild-test/base:1\nRUN ["/bin/busybox", "sh", "-c", "echo built > /etc/built"]\n'
    )
    flat, docker, local = tmp_path / "flat.tar", tmp_path / "docker.tar", tmp_path / "local"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "buildkit_py.cli.main",
            "--root",
            str(root),
            "build",
            "-q",
            "-t",
            "pybuild-test/built:1",
            "-o",
            f"type=tar,dest={flat}",
            "--output",
            f"type=docker,dest={docker}",
            "-o",
            f"type=local,dest={local}",
            str(context),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "etc/built" in flattened_names(flat.read_bytes())
    assert (local / "etc" / "built").read_text() == "built\n"
    assert load_archive(Store(tmp_path / "third"), docker) == ["pybuild-test/built:1"]
