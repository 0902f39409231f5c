"""pybuild load: docker archives (ours, `docker save`'s, legacy, compressed), OCI archives from skopeo and buildah,
and hostile archives, which are refused without writing anything into the store or outside it."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from archive_helpers import (
    BUSYBOX,
    Item,
    busybox_layers,
    info,
    inventory,
    make_image,
    sha256,
    tar_bytes,
    tmp_is_empty,
)
from helpers import required_tool

from buildkit_py.cli.main import main
from buildkit_py.errors import BuildError, DigestMismatch, LayerError, StoreError
from buildkit_py.image.docker_archive import load_docker_archive, save_docker_archive
from buildkit_py.image.load import load_archive
from buildkit_py.image.stored import image_config
from buildkit_py.layer.snapshots import snapshot_path
from buildkit_py.store import Store

TAG = "pybuild-test/archive:1"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "source-store")


@pytest.fixture
def target(tmp_path: Path) -> Store:
    return Store(tmp_path / "target-store")


@pytest.fixture(scope="module")
def docker_image(docker_daemon: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tiny image built by Docker's classic builder: busybox, a RUN layer with a hard link, a CMD."""
    context = tmp_path_factory.mktemp("docker-context")
    shutil.copy2(BUSYBOX, context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /etc && echo hi > /etc/hi && /bin/busybox ln /etc/hi /etc/hi2"]\n'
        'CMD ["/bin/busybox", "sh"]\n'
    )
    name = f"pybuild-load-test-{uuid.uuid4().hex[:8]}:1"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    subprocess.run(["docker", "build", "-q", "-t", name, str(context)], check=True, capture_output=True, env=env)
    yield name
    subprocess.run(["docker", "rmi", "-f", name], capture_output=True, check=False)


def _docker_id(name: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", name], check=True, capture_output=True, text=True
    ).stdout.strip()


def _check_docker_image(store: Store, name: str) -> None:
    image_id = store.resolve(name)
    config = image_config(store, image_id)
    assert config.config.cmd == ("/bin/busybox", "sh")
    top = snapshot_path(store, config.diff_ids[-1])
    assert (top / "etc" / "hi").read_text() == "hi\n"
    assert (top / "etc" / "hi").stat().st_ino == (top / "etc" / "hi2").stat().st_ino


# -- docker archives -------------------------------------------------------------------------------------------------


def test_docker_archive_round_trip(store: Store, target: Store) -> None:
    image_id = make_image(store)
    out = io.BytesIO()
    save_docker_archive(store, [TAG], out)
    assert load_docker_archive(target, io.BytesIO(out.getvalue())) == [TAG]
    assert target.resolve(TAG) == image_id
    assert target.images.config_bytes(image_id) == store.images.config_bytes(image_id)
    assert tmp_is_empty(target)
    # Loading again changes nothing and needs no unpacking.
    before = inventory(target)
    assert load_archive(target, io.BytesIO(out.getvalue())) == [TAG]
    assert inventory(target) == before


@pytest.mark.docker
def test_we_load_what_docker_save_wrote(target: Store, docker_image: str, tmp_path: Path) -> None:
    archive = tmp_path / "docker-save.tar"
    subprocess.run(["docker", "save", "-o", str(archive), docker_image], check=True)
    assert load_archive(target, archive) == [docker_image]
    assert str(target.resolve(docker_image)) == _docker_id(docker_image)  # the config is kept byte for byte
    _check_docker_image(target, docker_image)
    # `docker save | gzip` loads too.
    gzipped = tmp_path / "docker-save.tar.gz"
    gzipped.write_bytes(gzip.compress(archive.read_bytes()))
    other = Store(tmp_path / "other")
    assert load_archive(other, gzipped) == [docker_image]


@pytest.mark.docker
def test_docker_loads_what_we_loaded_and_saved(target: Store, docker_image: str, tmp_path: Path) -> None:
    archive = tmp_path / "docker-save.tar"
    subprocess.run(["docker", "save", "-o", str(archive), docker_image], check=True)
    load_archive(target, archive)
    renamed = f"pybuild-load-test-{uuid.uuid4().hex[:8]}:2"
    target.tags.set(renamed, target.resolve(docker_image))
    ours = tmp_path / "ours.tar"
    with open(ours, "wb") as out:
        save_docker_archive(target, [renamed], out)
    try:
        loaded = subprocess.run(["docker", "load", "-i", str(ours)], capture_output=True, text=True, check=False)
        assert loaded.returncode == 0, loaded.stderr
        assert _docker_id(renamed) == _docker_id(docker_image)
        run = subprocess.run(
            ["docker", "run", "--rm", renamed, "/bin/busybox", "cat", "/etc/hi2"], capture_output=True, check=False
        )
        assert run.stdout == b"hi\n"
    finally:
        subprocess.run(["docker", "rmi", renamed], capture_output=True, check=False)


@pytest.mark.docker
def test_we_load_what_skopeo_copied(target: Store, docker_image: str, tmp_path: Path) -> None:
    required_tool("skopeo")
    archive = tmp_path / "skopeo.tar"
    subprocess.run(
        ["skopeo", "copy", "-q", f"docker-daemon:{docker_image}", f"oci-archive:{archive}:{docker_image}"],
        check=True,
        capture_output=True,
    )
    assert load_archive(target, archive) == [docker_image]
    _check_docker_image(target, docker_image)


@pytest.mark.docker
def test_we_load_what_buildah_pushed(target: Store, docker_image: str, tmp_path: Path) -> None:
    required_tool("buildah")
    pulled = subprocess.run(
        ["buildah", "pull", "-q", f"docker-daemon:{docker_image}"], capture_output=True, check=False
    )
    assert pulled.returncode == 0, f"buildah cannot read the Docker daemon: {pulled.stderr.decode()[-200:]}"
    try:
        named, bare = tmp_path / "buildah-named.tar", tmp_path / "buildah.tar"
        subprocess.run(["buildah", "push", "-q", docker_image, f"oci-archive:{named}:{docker_image}"], check=True)
        subprocess.run(["buildah", "push", "-q", docker_image, f"oci-archive:{bare}"], check=True)
    finally:
        subprocess.run(["buildah", "rmi", docker_image], capture_output=True, check=False)
    assert load_archive(target, named) == [docker_image]
    _check_docker_image(target, docker_image)
    (image_id,) = load_archive(target, bare)  # no name in the archive: loaded by id
    assert image_id == str(target.resolve(docker_image))


def _docker_archive(
    layers: list[bytes], names: list[str] | None = None, config_extra: dict[str, object] | None = None
) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [str(sha256(layer)) for layer in layers]},
        **(config_extra or {}),
    }
    config_bytes = json.dumps(config).encode()
    members: list[tuple[str, bytes]] = [(f"{sha256(config_bytes).hex}.json", config_bytes)]
    paths = []
    for number, layer in enumerate(layers):
        paths.append(f"layer{number}/layer.tar")
        members.append((paths[-1], layer))
    manifest = [{"Config": members[0][0], "RepoTags": names or ["evil/image:1"], "Layers": paths}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    return tar_bytes([(info(name), data) for name, data in members])


def test_compressed_layers_in_a_docker_archive(target: Store) -> None:
    layers = busybox_layers()
    archive = _docker_archive(layers, ["pybuild-test/gz:1"])
    with tarfile.open(fileobj=io.BytesIO(archive)) as source:
        items = []
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "layer0/layer.tar":
                data = gzip.compress(data)
            if member.name == "layer1/layer.tar":
                import zstandard

                data = zstandard.ZstdCompressor().compress(data)
            items.append((info(member.name), data))
    assert load_archive(target, io.BytesIO(tar_bytes(items))) == ["pybuild-test/gz:1"]
    config = image_config(target, target.resolve("pybuild-test/gz:1"))
    assert list(config.diff_ids) == [sha256(layer) for layer in layers]


def test_legacy_archive_with_only_repositories(target: Store) -> None:
    base, top = busybox_layers()
    v1_base = {
        "id": "a" * 64,
        "created": "2020-01-01T00:00:00Z",
        "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD"]},
    }
    v1_top = {
        "id": "b" * 64,
        "parent": "a" * 64,
        "created": "2020-01-02T00:00:00Z",
        "os": "linux",
        "architecture": "amd64",
        "config": {"Cmd": ["/bin/sh"]},
    }
    items = [
        (info("repositories"), json.dumps({"legacy/image": {"1": "b" * 64}}).encode()),
        (info(f"{'a' * 64}/json"), json.dumps(v1_base).encode()),
        (info(f"{'a' * 64}/layer.tar"), base),
        (info(f"{'b' * 64}/json"), json.dumps(v1_top).encode()),
        (info(f"{'b' * 64}/layer.tar"), top),
    ]
    assert load_archive(target, io.BytesIO(tar_bytes(items))) == ["legacy/image:1"]
    config = image_config(target, target.resolve("legacy/image:1"))
    assert list(config.diff_ids) == [sha256(base), sha256(top)] and config.config.cmd == ("/bin/sh",)


def test_cli_load_from_a_file_and_from_stdin(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(store)
    archive = tmp_path / "image.tar"
    with open(archive, "wb") as out:
        save_docker_archive(store, [TAG], out)
    root = tmp_path / "cli-store"
    assert main(["--root", str(root), "load", "-i", str(archive)]) == 0
    assert capsys.readouterr().out == f"Loaded image: {TAG}\n"
    with open(archive, "rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(tmp_path / "stdin-store"), "load"],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Loaded image: {TAG}\n"


# -- hostile archives ------------------------------------------------------------------------------------------------

OUTSIDE = "/tmp/pybuild-escape-" + uuid.uuid4().hex[:8]

HOSTILE_LAYERS: dict[str, list[Item]] = {
    "traversal": [(info(f"../../../../../..{OUTSIDE}"), b"pwned")],
    "symlink-escape": [
        info("escape", tarfile.SYMTYPE, 0o777, link=os.path.dirname(OUTSIDE)),
        (info(f"escape/{os.path.basename(OUTSIDE)}"), b"pwned"),
    ],
    "relative-symlink-escape": [
        info("up", tarfile.SYMTYPE, 0o777, link="../../../../../../../../tmp"),
        (info(f"up/{os.path.basename(OUTSIDE)}"), b"pwned"),
    ],
    "hardlink-escape": [info("passwd", tarfile.LNKTYPE, link="../../../../../../etc/passwd")],
    "hardlink-absolute": [info("passwd", tarfile.LNKTYPE, link="/etc/passwd")],
    "duplicate-dir-then-symlink": [
        info("dir/", tarfile.DIRTYPE, 0o755),
        info("dir", tarfile.SYMTYPE, 0o777, link=os.path.dirname(OUTSIDE)),
        (info(f"dir/{os.path.basename(OUTSIDE)}"), b"pwned"),
    ],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_LAYERS))
@pytest.mark.parametrize("archive_format", ["docker", "oci"])
def test_hostile_layers_are_refused(target: Store, kind: str, archive_format: str) -> None:
    layer = tar_bytes(HOSTILE_LAYERS[kind])
    if archive_format == "docker":
        archive = _docker_archive([layer])
    else:
        archive = _oci_archive_of([layer])
    before = inventory(target)
    with pytest.raises((LayerError, StoreError)):
        load_archive(target, io.BytesIO(archive))
    assert not os.path.lexists(OUTSIDE)
    assert inventory(target) == before and tmp_is_empty(target)


def _oci_archive_of(layers: list[bytes]) -> bytes:
    from buildkit_py.image.manifest import OCI_LAYER, OCI_MANIFEST, Descriptor, Index, Manifest

    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(sha256(x)) for x in layers]},
        }
    ).encode()
    manifest = Manifest(
        config=Descriptor("application/vnd.oci.image.config.v1+json", sha256(config), len(config)),
        layers=tuple(Descriptor(OCI_LAYER, sha256(layer), len(layer)) for layer in layers),
    ).to_bytes()
    index = Index(
        (Descriptor(OCI_MANIFEST, sha256(manifest), len(manifest), (("io.containerd.image.name", "evil/oci:1"),)),)
    ).to_bytes()
    items = [(info("oci-layout"), b'{"imageLayoutVersion":"1.0.0"}'), (info("index.json"), index)]
    for blob in (config, manifest, *layers):
        items.append((info(f"blobs/sha256/{sha256(blob).hex}"), blob))
    return tar_bytes(items)


def test_wrong_diff_id_is_refused(target: Store) -> None:
    base, top = busybox_layers()
    archive = _docker_archive([base, top])
    # Swap the layer files: each still is a valid layer, but not the one the config names.
    with tarfile.open(fileobj=io.BytesIO(archive)) as source:
        files = {m.name: source.extractfile(m).read() for m in source.getmembers()}  # type: ignore[union-attr]
    files["layer0/layer.tar"], files["layer1/layer.tar"] = files["layer1/layer.tar"], files["layer0/layer.tar"]
    before = inventory(target)
    with pytest.raises(DigestMismatch):
        load_archive(target, io.BytesIO(tar_bytes([(info(name), data) for name, data in files.items()])))
    assert inventory(target) == before and tmp_is_empty(target)


def test_second_image_failing_leaves_nothing_from_the_first(target: Store) -> None:
    good = busybox_layers()
    bad = tar_bytes(HOSTILE_LAYERS["traversal"])
    archive_good = _docker_archive(good, ["good/image:1"])
    archive_bad = _docker_archive([bad], ["bad/image:1"])
    items: dict[str, bytes] = {}
    for archive, prefix in ((archive_good, "g"), (archive_bad, "b")):
        with tarfile.open(fileobj=io.BytesIO(archive)) as source:
            for member in source.getmembers():
                if member.name != "manifest.json":
                    items[f"{prefix}/{member.name}"] = source.extractfile(member).read()  # type: ignore[union-attr]
    manifest = []
    for archive, prefix in ((archive_good, "g"), (archive_bad, "b")):
        (entry,) = json.loads(_member(archive, "manifest.json"))
        manifest.append(
            {
                "Config": f"{prefix}/{entry['Config']}",
                "RepoTags": entry["RepoTags"],
                "Layers": [f"{prefix}/{layer}" for layer in entry["Layers"]],
            }
        )
    items["manifest.json"] = json.dumps(manifest).encode()
    before = inventory(target)
    with pytest.raises(LayerError):
        load_archive(target, io.BytesIO(tar_bytes([(info(name), data) for name, data in items.items()])))
    assert inventory(target) == before and tmp_is_empty(target)


def _member(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as source:
        return source.extractfile(name).read()  # type: ignore[union-attr]


def _files(archive: bytes) -> dict[str, bytes]:
    result: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as source:
        for member in source.getmembers():
            stream = source.extractfile(member)
            assert stream is not None
            result[member.name] = stream.read()
    return result


def _with_members(archive: bytes, extra: Sequence[Item]) -> bytes:
    return tar_bytes([(info(name), data) for name, data in _files(archive).items()] + list(extra))


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([(info(f"../../../..{OUTSIDE}"), b"pwned")], id="member-traversal"),
        pytest.param([(info(OUTSIDE), b"pwned")], id="member-absolute"),
        pytest.param([(info("manifest.json"), b"[]")], id="duplicate-member"),
    ],
)
def test_hostile_archive_members_are_refused(target: Store, extra: list[Item]) -> None:
    archive = _with_members(_docker_archive(busybox_layers()), extra)
    before = inventory(target)
    with pytest.raises(StoreError):
        load_archive(target, io.BytesIO(archive))
    assert not os.path.lexists(OUTSIDE)
    assert inventory(target) == before and tmp_is_empty(target)


def test_member_symlink_out_of_the_archive_is_refused(target: Store) -> None:
    items: list[Item] = []
    for name, data in _files(_docker_archive(busybox_layers())).items():
        if name == "layer0/layer.tar":
            items.append(info(name, tarfile.SYMTYPE, link="../../../../etc/passwd"))
        else:
            items.append((info(name), data))
    with pytest.raises(StoreError, match="outside the archive"):
        load_archive(target, io.BytesIO(tar_bytes(items)))
    assert inventory(target).images == ()


def test_manifest_path_traversal_is_refused(target: Store) -> None:
    files = _files(_docker_archive(busybox_layers()))
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"][0] = "../../../../etc/passwd"
    files["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(StoreError, match="climbs out"):
        load_archive(target, io.BytesIO(tar_bytes([(info(name), data) for name, data in files.items()])))


def test_not_an_archive(target: Store) -> None:
    with pytest.raises(BuildError):
        load_archive(target, io.BytesIO(b"hello, this is not a tar"))
    with pytest.raises(StoreError, match="not an image archive"):
        load_archive(target, io.BytesIO(tar_bytes([(info("README"), b"hi")])))
    assert tmp_is_empty(target)
