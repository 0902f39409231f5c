"""OCI image layouts: save with each compression and load back; skopeo and umoci read what we write; nested indexes,
platforms, the compressed-blob cache, and layouts whose blobs do not match their descriptors."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from archive_helpers import busybox_layers, info, inventory, make_image, sha256, tar_bytes, tmp_is_empty
from helpers import required_tool

from buildkit_py.digest import Digest
from buildkit_py.errors import DigestMismatch, StoreError
from buildkit_py.image.compressed import compressed_layer
from buildkit_py.image.load import load_archive
from buildkit_py.image.manifest import (
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    parse_index,
    parse_manifest,
)
from buildkit_py.image.oci_layout import load_oci_layout, save_oci_archive, save_oci_layout
from buildkit_py.image.stored import image_config
from buildkit_py.store import Store

TAG = "pybuild-test/archive:1"
MEDIA_TYPES = {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "uncompressed": OCI_LAYER}
MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd", "uncompressed": b""}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "source-store")


@pytest.fixture
def target(tmp_path: Path) -> Store:
    return Store(tmp_path / "target-store")


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "uncompressed"])
def test_archive_round_trip(store: Store, target: Store, compression: str) -> None:
    image_id = make_image(store)
    out = io.BytesIO()
    save_oci_archive(store, [TAG], out, compression)
    files = _members(out.getvalue())
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = parse_index(files["index.json"])
    (entry,) = index.manifests
    assert dict(entry.annotations) == {
        "io.containerd.image.name": "docker.io/pybuild-test/archive:1",
        "org.opencontainers.image.ref.name": "1",
    }
    manifest = parse_manifest(files[f"blobs/sha256/{entry.digest.hex}"])
    assert manifest.config.digest == image_id
    for layer in manifest.layers:
        assert layer.media_type == MEDIA_TYPES[compression]
        blob = files[f"blobs/sha256/{layer.digest.hex}"]
        assert blob.startswith(MAGIC[compression]) and sha256(blob) == layer.digest and len(blob) == layer.size

    assert load_oci_layout(target, io.BytesIO(out.getvalue())) == ["pybuild-test/archive:1"]
    assert target.resolve(TAG) == image_id
    assert target.images.config_bytes(image_id) == store.images.config_bytes(image_id)
    for diff_id in image_config(store, image_id).diff_ids:
        with target.layers.open(diff_id) as loaded, store.layers.open(diff_id) as original:
            assert loaded.read() == original.read()
        assert target.snapshots.has(diff_id)
    assert tmp_is_empty(target)


def test_folder_layout_round_trip_and_index_merge(store: Store, target: Store, tmp_path: Path) -> None:
    first = make_image(store, "pybuild-test/a:1")
    second = make_image(store, "pybuild-test/b:2", busybox_layers()[:1])
    layout = tmp_path / "layout"
    save_oci_layout(store, ["pybuild-test/a:1"], layout)
    save_oci_layout(store, ["pybuild-test/b:2"], layout, "zstd")
    index = parse_index((layout / "index.json").read_bytes())
    assert [dict(e.annotations)["org.opencontainers.image.ref.name"] for e in index.manifests] == ["1", "2"]
    loaded = load_archive(target, layout)
    assert sorted(loaded) == ["pybuild-test/a:1", "pybuild-test/b:2"]
    assert target.resolve("pybuild-test/a:1") == first and target.resolve("pybuild-test/b:2") == second


def test_untagged_image_and_several_tags(store: Store, target: Store) -> None:
    image_id = make_image(store, "pybuild-test/x:1")
    store.tags.set("pybuild-test/y:2", image_id)
    out = io.BytesIO()
    save_oci_archive(store, ["pybuild-test/x:1", "pybuild-test/y:2"], out)
    assert sorted(load_oci_layout(target, io.BytesIO(out.getvalue()))) == ["pybuild-test/x:1", "pybuild-test/y:2"]
    out = io.BytesIO()
    save_oci_archive(store, [str(image_id)], out)
    other = Store(target.root.parent / "third")
    assert load_oci_layout(other, io.BytesIO(out.getvalue())) == [str(image_id)]


def test_compressed_blobs_are_made_once(store: Store) -> None:
    image_id = make_image(store)
    diff_id = image_config(store, image_id).diff_ids[0]
    first = compressed_layer(store, diff_id, "gzip")
    path = store.blobs.path(first.digest)
    inode = path.stat().st_ino
    save_oci_archive(store, [TAG], io.BytesIO(), "gzip")
    again = compressed_layer(store, diff_id, "gzip")
    assert again == first and path.stat().st_ino == inode  # not written again
    path.unlink()  # a cache row whose blob is gone is a miss, and the blob comes back
    assert compressed_layer(store, diff_id, "gzip") == first and path.is_file()


def test_skopeo_reads_our_archive(store: Store, tmp_path: Path) -> None:
    required_tool("skopeo")
    make_image(store)
    for compression in ("gzip", "zstd", "uncompressed"):
        archive = tmp_path / f"image-{compression}.tar"
        with open(archive, "wb") as out:
            save_oci_archive(store, [TAG], out, compression)
        result = subprocess.run(
            ["skopeo", "inspect", f"oci-archive:{archive}"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)["Layers"]) == 2
        copy = subprocess.run(
            ["skopeo", "copy", f"oci-archive:{archive}", f"oci:{tmp_path / ('copy-' + compression)}:x"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert copy.returncode == 0, copy.stderr


def test_umoci_reads_and_unpacks_our_layout(store: Store, tmp_path: Path) -> None:
    required_tool("umoci")
    make_image(store)
    layout = tmp_path / "layout"
    save_oci_layout(store, [TAG], layout)
    listed = subprocess.run(["umoci", "ls", "--layout", str(layout)], capture_output=True, text=True, check=False)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["1"]
    bundle = tmp_path / "bundle"
    unpacked = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:1", str(bundle)], capture_output=True, text=True, check=False
    )
    assert unpacked.returncode == 0, unpacked.stderr
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    assert not (rootfs / "etc" / "hello").exists() and (rootfs / "etc" / "new").read_text() == "new\n"
    assert sorted(p.name for p in (rootfs / "opt").iterdir()) == ["fresh"]
    assert (rootfs / "bin" / "ls").stat().st_ino == (rootfs / "bin" / "busybox").stat().st_ino
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/sh"]


def _write_layout(root: Path, blobs: dict[Digest, bytes], index: Index) -> None:
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for digest, data in blobs.items():
        (root / "blobs" / "sha256" / digest.hex).write_bytes(data)
    (root / "index.json").write_bytes(index.to_bytes())


def _image_blobs(architecture: str, content: bytes) -> tuple[dict[Digest, bytes], Descriptor]:
    layer = tar_bytes([(info(f"{architecture}.txt"), content)])
    config = json.dumps(
        {"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [str(sha256(layer))]}}
    ).encode()
    manifest = Manifest(
        config=Descriptor("application/vnd.oci.image.config.v1+json", sha256(config), len(config)),
        layers=(Descriptor(OCI_LAYER, sha256(layer), len(layer)),),
    ).to_bytes()
    blobs = {sha256(layer): layer, sha256(config): config, sha256(manifest): manifest}
    return blobs, Descriptor(OCI_MANIFEST, sha256(manifest), len(manifest), platform=Platform("linux", architecture))


def test_nested_index_picks_the_platform(target: Store, tmp_path: Path) -> None:
    amd64_blobs, amd64 = _image_blobs("amd64", b"x86")
    arm64_blobs, arm64 = _image_blobs("arm64", b"arm")
    nested = Index((arm64, amd64)).to_bytes()
    blobs = {**amd64_blobs, **arm64_blobs, sha256(nested): nested}
    top = Descriptor(
        OCI_INDEX, sha256(nested), len(nested), annotations=(("io.containerd.image.name", "docker.io/multi/arch:1"),)
    )
    layout = tmp_path / "multi"
    _write_layout(layout, blobs, Index((top,)))
    assert load_archive(target, layout) == ["multi/arch:1"]
    assert image_config(target, target.resolve("multi/arch:1")).architecture == "amd64"
    assert load_archive(target, layout, "linux/arm64") == ["multi/arch:1"]
    assert image_config(target, target.resolve("multi/arch:1")).architecture == "arm64"
    with pytest.raises(StoreError, match="no image for linux/s390x"):
        load_archive(target, layout, "linux/s390x")


@pytest.mark.parametrize("damage", ["layer", "config", "manifest", "size"])
def test_blob_not_matching_its_descriptor_is_refused(target: Store, tmp_path: Path, damage: str) -> None:
    blobs, descriptor = _image_blobs("amd64", b"content")
    manifest = parse_manifest(blobs[descriptor.digest])
    layout = tmp_path / "bad"
    entry = Descriptor(OCI_MANIFEST, descriptor.digest, descriptor.size, (("io.containerd.image.name", "bad/x:1"),))
    _write_layout(layout, blobs, Index((entry,)))
    victim = {"layer": manifest.layers[0].digest, "config": manifest.config.digest, "manifest": descriptor.digest}
    path = layout / "blobs" / "sha256" / victim.get(damage, manifest.layers[0].digest).hex
    data = path.read_bytes()
    path.write_bytes(data + b"\0" * 512 if damage == "size" else data[:-1] + bytes([data[-1] ^ 1]))
    before = inventory(target)
    with pytest.raises(DigestMismatch):
        load_archive(target, layout)
    assert inventory(target) == before and tmp_is_empty(target)


def test_symlinked_blob_in_a_layout_folder_is_refused(target: Store, tmp_path: Path) -> None:
    blobs, descriptor = _image_blobs("amd64", b"content")
    layout = tmp_path / "linked"
    _write_layout(layout, blobs, Index((descriptor,)))
    manifest = parse_manifest(blobs[descriptor.digest])
    layer_path = layout / "blobs" / "sha256" / manifest.layers[0].digest.hex
    outside = tmp_path / "outside-layer"
    layer_path.rename(outside)
    layer_path.symlink_to(outside)
    with pytest.raises(StoreError, match="symlink"):
        load_archive(target, layout)
    assert inventory(target).images == ()
