"""`docker save` archives: the layout read back with tarfile, and a round trip through the real `docker load`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from buildkit_py.digest import Digest
from buildkit_py.errors import DigestMismatch, ImageNotFound
from buildkit_py.image.config import ContainerConfig, HistoryEntry, ImageConfig
from buildkit_py.image.docker_archive import chain_ids, save_docker_archive
from buildkit_py.image.stored import image_config, put_image
from buildkit_py.store import Store

BUSYBOX = Path("/bin/busybox")


def commit_tar(store: Store, build: list[tarfile.TarInfo | tuple[tarfile.TarInfo, Path | bytes]]) -> Digest:
    with store.temp_path("layer") as tar_path:
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as archive:
            for item in build:
                if isinstance(item, tarfile.TarInfo):
                    archive.addfile(item)
                    continue
                info, content = item
                if isinstance(content, Path):
                    with open(content, "rb") as stream:
                        archive.addfile(info, stream)
                else:
                    archive.addfile(info, io.BytesIO(content))
        data = tar_path.read_bytes()
        diff_id = Digest("sha256", hashlib.sha256(data).hexdigest())
        store.layers.commit(tar_path, diff_id, len(data))
    return diff_id


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o755, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = 1_700_000_000
    return info


def busybox_image(store: Store, marker: str = "") -> Digest:
    """Two layers: bin/busybox, then bin/sh -> busybox and a file saying `marker`."""
    base = commit_tar(
        store,
        [
            entry("bin", tarfile.DIRTYPE),
            (entry("bin/busybox", size=BUSYBOX.stat().st_size), BUSYBOX),
        ],
    )
    top = commit_tar(
        store,
        [
            entry("bin/sh", tarfile.SYMTYPE, mode=0o777, link="busybox"),
            entry("etc", tarfile.DIRTYPE),
            (entry("etc/marker", mode=0o644, size=len(marker)), marker.encode()),
        ],
    )
    config = ImageConfig(
        config=ContainerConfig(env=("PATH=/bin",), cmd=("sh",)),
        diff_ids=(base, top),
        history=(
            HistoryEntry(created="2024-01-01T00:00:00Z", created_by="ADD busybox /bin/"),
            HistoryEntry(created="2024-01-01T00:00:00Z", created_by="RUN ln -s busybox /bin/sh"),
        ),
        created="2024-01-01T00:00:00Z",
    )
    return put_image(store, config)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "root")


def read_archive(data: bytes) -> dict[str, bytes | None]:
    result: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive:
            file = archive.extractfile(member)
            result[member.name] = file.read() if file is not None else None
    return result


def test_chain_ids() -> None:
    a, b = Digest("sha256", "a" * 64), Digest("sha256", "b" * 64)
    expected = hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, Digest("sha256", expected)]
    assert chain_ids([]) == []


def test_layout(store: Store) -> None:
    image_id = busybox_image(store)
    store.tags.set("pybuild-test/busybox:1", image_id)
    out = io.BytesIO()
    save_docker_archive(store, ["pybuild-test/busybox:1"], out)
    files = read_archive(out.getvalue())

    manifest = json.loads(files["manifest.json"] or b"")
    config = image_config(store, image_id)
    chains = chain_ids(config.diff_ids)
    assert manifest == [
        {
            "Config": f"{image_id.hex}.json",
            "RepoTags": ["pybuild-test/busybox:1"],
            "Layers": [f"{chain.hex}/layer.tar" for chain in chains],
        }
    ]
    assert files[f"{image_id.hex}.json"] == store.images.config_bytes(image_id)
    for diff_id, chain in zip(config.diff_ids, chains, strict=True):
        layer = files[f"{chain.hex}/layer.tar"] or b""
        assert hashlib.sha256(layer).hexdigest() == diff_id.hex
        assert files[f"{chain.hex}/VERSION"] == b"1.0"
        assert json.loads(files[f"{chain.hex}/json"] or b"")["id"] == chain.hex
    top_json = json.loads(files[f"{chains[1].hex}/json"] or b"")
    assert top_json["parent"] == chains[0].hex and top_json["config"]["Cmd"] == ["sh"]
    assert json.loads(files["repositories"] or b"") == {"pybuild-test/busybox": {"1": chains[1].hex}}


def test_save_by_id_has_no_repo_tags_and_same_image_once(store: Store) -> None:
    layer = commit_tar(store, [(entry("a", size=1), b"a")])
    image_id = put_image(store, ImageConfig(diff_ids=(layer,)))
    store.tags.set("x:1", image_id)
    store.tags.set("x:2", image_id)
    out = io.BytesIO()
    save_docker_archive(store, [image_id.hex[:12], "x:2", "x:1", "x:2"], out)
    files = read_archive(out.getvalue())
    manifest = json.loads(files["manifest.json"] or b"")
    assert len(manifest) == 1 and manifest[0]["RepoTags"] == ["x:2", "x:1"]
    assert sum(name.endswith("layer.tar") for name in files) == 1

    out = io.BytesIO()
    save_docker_archive(store, [str(image_id)], out)
    files = read_archive(out.getvalue())
    assert json.loads(files["manifest.json"] or b"")[0]["RepoTags"] is None
    assert "repositories" not in files


def test_save_is_deterministic(store: Store) -> None:
    layer = commit_tar(store, [(entry("a", size=1), b"a")])
    store.tags.set("x", put_image(store, ImageConfig(diff_ids=(layer,))))
    first, second = io.BytesIO(), io.BytesIO()
    save_docker_archive(store, ["x"], first)
    save_docker_archive(store, ["x"], second)
    assert first.getvalue() == second.getvalue()


def test_save_unknown_image(store: Store) -> None:
    with pytest.raises(ImageNotFound):
        save_docker_archive(store, ["ghost:1"], io.BytesIO())


def test_save_detects_corrupt_layer(store: Store) -> None:
    layer = commit_tar(store, [(entry("a", size=4), b"good")])
    store.tags.set("x", put_image(store, ImageConfig(diff_ids=(layer,))))
    path = store.blobs.path(layer)
    data = bytearray(path.read_bytes())
    data[512] = ord("b")
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        save_docker_archive(store, ["x"], io.BytesIO())


@pytest.mark.docker
def test_docker_loads_and_runs_saved_image(store: Store, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    tag = f"pybuild-test/archive:{marker[:12]}"
    image_id = busybox_image(store, marker)
    store.tags.set(tag, image_id)
    archive = tmp_path / "image.tar"
    with open(archive, "wb") as out:
        save_docker_archive(store, [tag], out)
    try:
        loaded = subprocess.run(
            ["docker", "load", "-i", str(archive)], capture_output=True, text=True, check=False, timeout=300
        )
        assert loaded.returncode == 0, loaded.stderr
        assert f"Loaded image: {tag}" in loaded.stdout
        inspected = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True, check=True
        )
        assert inspected.stdout.strip() == str(image_id)
        ran = subprocess.run(
            ["docker", "run", "--rm", "--network=none", tag, "sh", "-c", "echo ok; cat /etc/marker"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == f"ok\n{marker}"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False, timeout=120)


# -- manifests (the JSON an OCI layout or a registry push is made of) ---------------------------------------------


def test_manifest_round_trip_and_validation() -> None:
    from buildkit_py.image.manifest import (
        DOCKER_MANIFEST,
        OCI_CONFIG,
        OCI_INDEX,
        OCI_LAYER_GZIP,
        Descriptor,
        Index,
        Manifest,
        ManifestError,
        Platform,
        layer_compression,
        parse_index,
        parse_manifest,
        parse_manifest_or_index,
    )

    config = Descriptor(OCI_CONFIG, Digest("sha256", "c" * 64), 123)
    layer = Descriptor(OCI_LAYER_GZIP, Digest("sha256", "d" * 64), 456, annotations=(("k", "v"),))
    manifest = Manifest(config=config, layers=(layer,))
    data = manifest.to_bytes()
    assert json.loads(data)["schemaVersion"] == 2
    assert parse_manifest(data) == manifest
    assert parse_manifest_or_index(data) == manifest
    assert layer_compression(layer.media_type) == "gzip"

    entry_descriptor = Descriptor(
        manifest.media_type, Digest("sha256", hashlib.sha256(data).hexdigest()), len(data), platform=Platform()
    )
    index = Index(manifests=(entry_descriptor,))
    assert parse_index(index.to_bytes(), OCI_INDEX) == index
    assert parse_manifest_or_index(index.to_bytes()) == index
    assert index.select(Platform.parse("linux/amd64")) == entry_descriptor
    assert index.select(Platform.parse("linux/arm64/v8")) is None

    for bad in (
        b"not json",
        b"[]",
        b'{"schemaVersion": 1}',
        json.dumps({"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "digest": "sha256:x", "size": 1}}).encode(),
        data.replace(b'"size":123', b'"size":-1'),
    ):
        with pytest.raises(ManifestError):
            parse_manifest(bad)
    with pytest.raises(ManifestError, match="differs"):
        parse_manifest(data, DOCKER_MANIFEST)
    with pytest.raises(ManifestError):
        layer_compression(OCI_CONFIG)
