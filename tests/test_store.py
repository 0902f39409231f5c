"""The Store façade: layers, images, tags (compare-and-swap), resolve rules, rmi semantics, cache records, the stat
cache, temp space, and two processes on one root. Real layer tars, real SQLite, real files: nothing is mocked."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from buildkit_py.digest import Digest, digest_bytes
from buildkit_py.errors import ConflictError, DigestMismatch, ImageNotFound, InvalidDigest, StoreError
from buildkit_py.image.config import ContainerConfig, HistoryEntry, ImageConfig
from buildkit_py.image.stored import image_config, put_image
from buildkit_py.layer.snapshots import snapshot_path
from buildkit_py.reference import InvalidReference
from buildkit_py.store import ABSENT, Store, default_root


def make_layer_tar(path: Path, files: dict[str, bytes]) -> tuple[Digest, int]:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    data = path.read_bytes()
    return Digest("sha256", hashlib.sha256(data).hexdigest()), len(data)


def add_layer(store: Store, files: dict[str, bytes]) -> Digest:
    with store.temp_path("layer") as tar_path:
        diff_id, size = make_layer_tar(tar_path, files)
        store.layers.commit(tar_path, diff_id, size)
    return diff_id


def add_image(store: Store, layers: list[dict[str, bytes]], cmd: str = "sh", created: str = "") -> Digest:
    diff_ids = tuple(add_layer(store, files) for files in layers)
    config = ImageConfig(
        config=ContainerConfig(cmd=(cmd,)),
        diff_ids=diff_ids,
        history=tuple(HistoryEntry(created=created, created_by=f"layer {i}") for i in range(len(diff_ids))),
        created=created,
    )
    return put_image(store, config)


V1_STORE = Path(__file__).resolve().parents[1] / "testdata" / "store-v1"


@pytest.fixture(params=["fresh", "migrated"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Every test here is a contract test of the store's interfaces, run on a new store and on one that pybuild
    0.1.0 wrote and this release migrated (emptied first, so that both start alike)."""
    if request.param == "fresh":
        return Store(tmp_path / "root")
    shutil.copytree(V1_STORE, tmp_path / "root")
    migrated = Store(tmp_path / "root")
    migrated.remove_image("v1/hello:1")
    for record in migrated.cache.records():
        migrated.cache.delete(record.key)
    migrated.stat_cache.delete(migrated.stat_cache.paths())
    assert migrated.images.summaries() == [] and migrated.layers.sizes() == {}
    return migrated


def key(name: str) -> Digest:
    return digest_bytes(name.encode())


# -- layout and temp space ---------------------------------------------------------------------------------------


def test_layout(store: Store) -> None:
    for folder in ("blobs/sha256", "snapshots", "tmp"):
        assert (store.root / folder).is_dir()
    assert (store.root / "meta.db").is_file()
    assert store.blobs.root == store.root and store.snapshots.root == store.root


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYBUILD_ROOT", str(tmp_path / "x"))
    assert default_root() == tmp_path / "x"
    monkeypatch.delenv("PYBUILD_ROOT")
    expected = Path("/var/lib/pybuild") if os.geteuid() == 0 else Path.home() / ".local/share/pybuild"
    assert default_root() == expected


def test_temp_dir_and_path_are_removed(store: Store) -> None:
    with store.temp_dir("work-") as folder:
        assert folder.parent == store.root / "tmp" and folder.name.startswith("work-")
        (folder / "sub").mkdir()
        (folder / "sub" / "file").write_text("x")
    assert not folder.exists()
    with store.temp_path("file-") as path:
        path.write_text("x")
    assert not path.exists()


def test_sweep_removes_only_dead_processes_temp_dirs(store: Store) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)
    stale = store.root / "tmp" / f"exec-@{dead_pid}.1.abc"
    (stale / "upper").mkdir(parents=True)
    stale_file = store.root / "tmp" / f"blob@{dead_pid}.1.xyz"
    stale_file.write_text("x")
    # A live process (this one, and pid 1) keeps its temp dirs; a name without an owner is never touched.
    with store.temp_dir("mine-") as mine:
        other_live = store.root / "tmp" / "x@1.0.abc"
        other_live.mkdir()
        foreign = store.root / "tmp" / "no-owner"
        foreign.mkdir()
        Store(store.root)
        assert not stale.exists() and not stale_file.exists()
        assert mine.exists() and other_live.exists() and foreign.exists()


# -- layers ------------------------------------------------------------------------------------------------------


def test_commit_layer_moves_tar_into_blobs(store: Store) -> None:
    with store.temp_path("layer") as tar_path:
        diff_id, size = make_layer_tar(tar_path, {"a": b"A"})
        inode = tar_path.stat().st_ino
        store.layers.commit(tar_path, diff_id, size)
        assert not tar_path.exists()
    assert store.blobs.path(diff_id).stat().st_ino == inode
    assert store.layers.has(diff_id)
    assert store.layers.size(diff_id) == size
    with store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
        assert [member.name for member in archive] == ["a"]


def test_commit_layer_checks_digest_and_size(store: Store) -> None:
    with store.temp_path("layer") as tar_path:
        diff_id, size = make_layer_tar(tar_path, {"a": b"A"})
        with pytest.raises(DigestMismatch):
            store.layers.commit(tar_path, Digest("sha256", "0" * 64), size)
        with pytest.raises(StoreError):
            store.layers.commit(tar_path, diff_id, size + 1)
    assert not store.layers.has(diff_id)


def test_commit_layer_with_snapshot(store: Store) -> None:
    with store.temp_dir("exec-") as scratch:
        upper = scratch / "upper"
        upper.mkdir()
        (upper / "hello").write_text("hi")
        tar_path = scratch / "layer.tar"
        diff_id, size = make_layer_tar(tar_path, {"hello": b"hi"})
        store.layers.commit(tar_path, diff_id, size, snapshot=upper)
    snapshot = snapshot_path(store, diff_id)
    assert snapshot == store.root / "snapshots" / diff_id.hex[:16]
    assert (snapshot / "hello").read_text() == "hi"
    # Committing the same layer again keeps the existing snapshot and drops the new folder.
    with store.temp_dir("exec-") as scratch:
        upper = scratch / "upper"
        upper.mkdir()
        (upper / "other").write_text("x")
        tar_path = scratch / "layer.tar"
        make_layer_tar(tar_path, {"hello": b"hi"})
        store.layers.commit(tar_path, diff_id, size, snapshot=upper)
        assert not upper.exists()
    assert sorted(os.listdir(snapshot)) == ["hello"]


def test_snapshot_path_unpacks_from_blob(store: Store) -> None:
    diff_id = add_layer(store, {"etc/motd": b"welcome\n", "bin/tool": b"#!/bin/sh\n"})
    assert not store.snapshots.has(diff_id)
    path = snapshot_path(store, diff_id)
    assert (path / "etc" / "motd").read_bytes() == b"welcome\n"
    assert snapshot_path(store, diff_id) == path
    assert os.listdir(store.root / "tmp") == []


def test_snapshot_path_of_unknown_layer(store: Store) -> None:
    with pytest.raises(StoreError):
        snapshot_path(store, Digest("sha256", "1" * 64))


# -- images and tags ---------------------------------------------------------------------------------------------


def test_put_image_id_is_config_sha256(store: Store) -> None:
    image_id = add_image(store, [{"a": b"A"}])
    data = store.images.config_bytes(image_id)
    assert image_id == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert image_config(store, image_id).config.cmd == ("sh",)
    assert add_image(store, [{"a": b"A"}]) == image_id


def test_put_image_requires_its_layers(store: Store) -> None:
    config = ImageConfig(diff_ids=(Digest("sha256", "2" * 64),))
    with pytest.raises(StoreError, match="not in the store"):
        put_image(store, config)
    assert store.images.summaries() == []


def test_tag_and_resolve(store: Store) -> None:
    image_id = add_image(store, [{"a": b"A"}])
    store.tags.set("busybox", image_id)
    store.tags.set("localhost:5000/a/b:1", image_id)
    store.tags.set("docker.io/library/alpine:3", image_id)
    assert store.tags.of(image_id) == ["alpine:3", "busybox:latest", "localhost:5000/a/b:1"]
    for text in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", "library/busybox", "alpine:3"):
        assert store.resolve(text) == image_id
    assert store.resolve("localhost:5000/a/b:1") == image_id
    assert store.resolve(str(image_id)) == image_id
    assert store.resolve(image_id.hex) == image_id
    assert store.resolve(image_id.hex[:4]) == image_id
    assert store.resolve("sha256:" + image_id.hex[:12]) == image_id


def test_resolve_not_found_uses_docker_wording(store: Store) -> None:
    image_id = add_image(store, [{"a": b"A"}])
    store.tags.set("busybox:1", image_id)
    for text in ("busybox", "busybox:2", "nothing", "sha256:" + "f" * 64, "f" * 64, image_id.hex[:3]):
        with pytest.raises(ImageNotFound, match=f"^No such image: {text}$"):
            store.resolve(text)
    with pytest.raises(InvalidReference, match="must be lowercase"):
        store.resolve("UPPER")


def test_resolve_ambiguous_prefix(store: Store) -> None:
    # Store images until two ids share a 4-hex prefix (the birthday bound makes that a few hundred).
    seen: dict[str, Digest] = {}
    for number in range(5000):
        image_id = put_image(store, ImageConfig(config=ContainerConfig(cmd=(str(number),))))
        if image_id.hex[:4] in seen:
            break
        seen[image_id.hex[:4]] = image_id
    prefix = image_id.hex[:4]
    with pytest.raises(ImageNotFound, match=f"No such image: {prefix} .*ambiguous"):
        store.resolve(prefix)
    assert store.resolve(image_id.hex[:20]) == image_id


def test_tag_takes_precedence_over_id_prefix(store: Store) -> None:
    first = add_image(store, [], cmd="1")
    second = add_image(store, [], cmd="2")
    prefix = second.hex[:6]
    store.tags.set(prefix, first)
    assert store.resolve(prefix) == first
    assert store.resolve(f"sha256:{prefix}") == second


def test_tag_requires_existing_image_and_valid_name(store: Store) -> None:
    with pytest.raises(ImageNotFound):
        store.tags.set("x", Digest("sha256", "3" * 64))
    image_id = add_image(store, [])
    with pytest.raises(InvalidReference):
        store.tags.set("Bad Name", image_id)
    with pytest.raises(InvalidReference):
        store.tags.set("x@sha256:" + "a" * 64, image_id)


def test_tag_compare_and_swap(store: Store) -> None:
    first = add_image(store, [], cmd="1")
    second = add_image(store, [], cmd="2")
    store.tags.set("app", first, expected_previous=ABSENT)
    with pytest.raises(ConflictError):
        store.tags.set("app", second, expected_previous=ABSENT)
    with pytest.raises(ConflictError):
        store.tags.set("app", second, expected_previous=second)
    assert store.resolve("app") == first
    store.tags.set("app", second, expected_previous=first)
    assert store.resolve("app") == second
    store.tags.set("app", first)  # unconditional
    assert store.resolve("app") == first
    with pytest.raises(ConflictError):
        store.tags.set("new", first, expected_previous=second)


def test_untag(store: Store) -> None:
    image_id = add_image(store, [])
    store.tags.set("app:1", image_id)
    store.tags.remove("app:1")
    assert store.tags.of(image_id) == []
    assert store.resolve(image_id.hex[:8]) == image_id
    with pytest.raises(ImageNotFound):
        store.tags.remove("app:1")


def test_list_images(store: Store) -> None:
    old = add_image(store, [{"a": b"A" * 1000}], cmd="old", created="2024-01-01T00:00:00Z")
    new = add_image(store, [{"a": b"A" * 1000}, {"b": b"B"}], cmd="new", created="2025-01-01T00:00:00Z")
    store.tags.set("app:new", new)
    store.tags.set("app:latest", new)
    summaries = store.images.summaries()
    assert [s.image_id for s in summaries] == [new, old]
    assert summaries[0].tags == ("app:latest", "app:new")
    assert summaries[1].tags == ()
    assert summaries[0].created == "2025-01-01T00:00:00Z"
    layers = image_config(store, new).diff_ids
    assert summaries[0].size == sum(store.layers.size(d) for d in layers)
    assert summaries[1].size == store.layers.size(layers[0])


# -- rmi ---------------------------------------------------------------------------------------------------------


def test_rmi_by_tag_untags_then_deletes_with_last_tag(store: Store) -> None:
    image_id = add_image(store, [{"a": b"A"}, {"b": b"B"}])
    diff_ids = image_config(store, image_id).diff_ids
    for diff_id in diff_ids:
        snapshot_path(store, diff_id)
    store.tags.set("app:1", image_id)
    store.tags.set("app:2", image_id)
    assert store.remove_image("app:1") == ["Untagged: app:1"]
    assert store.resolve("app:2") == image_id
    lines = store.remove_image("app:2")
    assert lines == [
        "Untagged: app:2",
        f"Deleted: {image_id}",
        f"Deleted: {diff_ids[1]}",
        f"Deleted: {diff_ids[0]}",
    ]
    assert not store.blobs.has(image_id)
    for diff_id in diff_ids:
        assert not store.layers.has(diff_id) and not store.blobs.has(diff_id) and not store.snapshots.has(diff_id)
    assert os.listdir(store.root / "tmp") == []
    assert store.images.summaries() == []


def test_rmi_by_id_with_several_tags_needs_force(store: Store) -> None:
    image_id = add_image(store, [{"a": b"A"}])
    store.tags.set("a:1", image_id)
    store.tags.set("b:1", image_id)
    with pytest.raises(ConflictError, match=rf"unable to delete {image_id.short} \(must be forced\)"):
        store.remove_image(image_id.hex[:12])
    assert store.tags.of(image_id) == ["a:1", "b:1"]
    lines = store.remove_image(image_id.hex[:12], force=True)
    assert lines[:3] == ["Untagged: a:1", "Untagged: b:1", f"Deleted: {image_id}"]


def test_rmi_by_id_with_one_tag(store: Store) -> None:
    image_id = add_image(store, [])
    store.tags.set("only", image_id)
    assert store.remove_image(str(image_id)) == ["Untagged: only:latest", f"Deleted: {image_id}"]


def test_rmi_keeps_layers_shared_with_other_images_or_cache(store: Store) -> None:
    base = {"base": b"base"}
    first = add_image(store, [base, {"one": b"1"}], cmd="1")
    second = add_image(store, [base, {"two": b"2"}], cmd="2")
    base_id, one_id = image_config(store, first).diff_ids
    cached = add_layer(store, {"cached": b"c"})
    third = put_image(store, ImageConfig(diff_ids=(cached,)))
    store.cache.put(key("step"), (cached,))

    lines = store.remove_image(str(first))
    assert lines == [f"Deleted: {first}", f"Deleted: {one_id}"]
    assert store.layers.has(base_id)
    store.remove_image(str(third))
    assert store.layers.has(cached)
    assert store.cache.get(key("step")) == (cached,)
    store.remove_image(str(second))
    assert not store.layers.has(base_id)
    assert store.cache.delete(key("step")) == [cached]
    assert not store.layers.has(cached) and not store.blobs.has(cached)


def test_rmi_unknown(store: Store) -> None:
    with pytest.raises(ImageNotFound, match="No such image: ghost"):
        store.remove_image("ghost")


# -- build cache records -----------------------------------------------------------------------------------------


def test_cache_records(store: Store) -> None:
    first = add_layer(store, {"1": b"1"})
    second = add_layer(store, {"2": b"2"})
    assert store.cache.get(key("a")) is None
    store.cache.put(key("a"), (first, second), "RUN make")
    store.cache.put(key("empty"), ())
    assert store.cache.get(key("a")) == (first, second)
    assert store.cache.get(key("empty")) == ()
    records = {record.key: record for record in store.cache.records()}
    assert records[key("a")].chain == (first, second)
    assert records[key("a")].description == "RUN make"
    assert records[key("a")].last_used >= records[key("a")].created
    store.cache.put(key("a"), (first,))
    assert store.cache.get(key("a")) == (first,)


def test_cache_get_updates_last_used(store: Store) -> None:
    layer = add_layer(store, {"1": b"1"})
    store.cache.put(key("a"), (layer,))
    before = store.cache.records()[0].last_used
    store.cache.get(key("a"))
    assert store.cache.records()[0].last_used >= before


def test_cache_put_refuses_missing_layers(store: Store) -> None:
    with pytest.raises(StoreError):
        store.cache.put(key("a"), (Digest("sha256", "4" * 64),))
    assert store.cache.records() == []


def test_cache_record_with_missing_blob_is_a_miss(store: Store) -> None:
    layer = add_layer(store, {"1": b"1"})
    store.cache.put(key("a"), (layer,))
    store.blobs.delete(layer)
    assert store.cache.get(key("a")) is None
    assert store.cache.records() == []


def test_cache_get_many_answers_as_get_does_and_drops_records_of_missing_layers(store: Store) -> None:
    shared = add_layer(store, {"1": b"1"})
    kept = add_layer(store, {"2": b"2"})
    lost = add_layer(store, {"3": b"3"})
    store.cache.put(key("a"), (shared,))
    store.cache.put(key("b"), (shared, kept))
    store.cache.put(key("c"), (shared, lost))
    store.cache.put(key("empty"), ())
    store.blobs.delete(lost)
    found = store.cache.get_many([key("a"), key("b"), key("c"), key("empty"), key("none"), key("a")])
    assert found == {key("a"): (shared,), key("b"): (shared, kept), key("empty"): ()}
    assert {record.key for record in store.cache.records()} == {key("a"), key("b"), key("empty")}


def test_cache_record_with_missing_snapshot_is_a_hit_and_snapshot_comes_back(store: Store) -> None:
    layer = add_layer(store, {"f": b"content"})
    store.cache.put(key("a"), (layer,))
    snapshot_path(store, layer)
    store.snapshots.remove(layer)
    assert store.cache.get(key("a")) == (layer,)
    assert (snapshot_path(store, layer) / "f").read_bytes() == b"content"


# -- stat cache --------------------------------------------------------------------------------------------------


def test_stat_cache_batched(store: Store) -> None:
    rows = [(f"dir/file{i}", i, i * 2, i * 3, i * 4, f"blake3:{i:064x}") for i in range(20_000)]
    store.stat_cache.put(rows)
    keys = [row[0] for row in rows] + ["missing"]
    found = store.stat_cache.get(keys)
    assert len(found) == 20_000
    assert found["dir/file7"] == (7, 14, 21, 28, f"blake3:{7:064x}")
    store.stat_cache.put([("dir/file7", 1, 1, 1, 1, "blake3:" + "0" * 64)])
    assert store.stat_cache.get(["dir/file7"])["dir/file7"][0] == 1
    assert store.stat_cache.get([]) == {}


def test_bad_digests_are_rejected(store: Store) -> None:
    with pytest.raises(InvalidDigest):
        store.snapshots.path(Digest("sha256", "../../etc"))
    with pytest.raises(InvalidDigest):
        store.layers.has(Digest("sha256", "../x"))


# -- two processes on one root -----------------------------------------------------------------------------------


def _worker(root: str, worker: int, rounds: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = Store(Path(root))
    swaps = conflicts = 0
    shared = add_layer(store, {"shared": b"same in every process"})
    for round_number in range(rounds):
        layer = add_layer(store, {f"w{worker}": str(round_number).encode()})
        image_id = put_image(
            store, ImageConfig(config=ContainerConfig(cmd=(f"{worker}-{round_number}",)), diff_ids=(shared, layer))
        )
        store.cache.put(key(f"{worker}-{round_number}"), (shared, layer))
        while True:
            try:
                current = store.resolve("race:latest")
            except ImageNotFound:
                try:
                    store.tags.set("race", image_id, expected_previous=ABSENT)
                    break
                except ConflictError:
                    conflicts += 1
                    continue
            try:
                store.tags.set("race", image_id, expected_previous=current)
                break
            except ConflictError:
                conflicts += 1
        swaps += 1
    results.put((worker, swaps, conflicts))
    store.close()


def test_two_processes_share_one_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    Store(root).close()
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    rounds = 25
    processes = [context.Process(target=_worker, args=(str(root), n, rounds, results)) for n in range(2)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert sum(swaps for _, swaps, _ in outcomes) == 2 * rounds

    store = Store(root)
    assert len(store.images.summaries()) == 2 * rounds
    assert len(store.cache.records()) == 2 * rounds
    for record in store.cache.records():
        assert store.cache.get(record.key) == record.chain
        for diff_id in record.chain:
            store.blobs.verify(diff_id)
    assert store.tags.of(store.resolve("race")) == ["race:latest"]
    assert os.listdir(root / "tmp") == []
