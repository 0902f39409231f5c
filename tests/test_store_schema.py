"""One database, one schema: a store written by pybuild 0.1.0 opens and migrates, a newer or damaged database is
refused with a clear message, and the records that used to live elsewhere (step log, compressed forms, registry
records) keep working through their own narrow interfaces."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from buildkit_py.builder import build, explain
from buildkit_py.digest import Digest
from buildkit_py.errors import StoreError
from buildkit_py.image.compressed import compressed_layer
from buildkit_py.image.stored import image_config
from buildkit_py.store import CompressedForm, DamagedContent, Store
from buildkit_py.store.schema import SCHEMA_VERSION

V1_STORE = Path(__file__).resolve().parents[1] / "testdata" / "store-v1"
V1_IMAGE = "v1/hello:1"


@pytest.fixture
def v1_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(V1_STORE, root)
    return root


def _v1_context(tmp_path: Path, text: str = "hello v1\n") -> Path:
    context = tmp_path / "context"
    context.mkdir(exist_ok=True)
    (context / "hello.txt").write_text(text)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\nLABEL made.by=pybuild-0.1.0\n")
    return context


def test_a_store_written_by_the_previous_release_opens_and_migrates(v1_root: Path, tmp_path: Path) -> None:
    assert sqlite3.connect(v1_root / "meta.db").execute("PRAGMA user_version").fetchone()[0] == 1
    store = Store(v1_root)
    assert store.db.version == SCHEMA_VERSION
    image_id = store.resolve(V1_IMAGE)
    config = image_config(store, image_id)
    assert dict(config.config.labels) == {"made.by": "pybuild-0.1.0"}
    (diff_id,) = config.diff_ids
    with store.layers.open(diff_id) as stream:
        assert len(stream.read()) == store.layers.size(diff_id)
    assert (store.layers.snapshot(diff_id) / "hello.txt").read_text() == "hello v1\n"  # type: ignore[operator]

    # what registry/blobs.db held moved in, and the file is gone
    (form,) = store.forms.of(diff_id)
    assert form.algorithm == "gzip" and form.media_type.endswith("+gzip") and form.local
    assert store.registry.sources(form.digest, "localhost:5000") == ["v1/hello"]
    assert store.registry.image_for_manifest("localhost:5000", "v1/hello", form.digest) == image_id
    assert not (v1_root / "registry").exists()
    # the gzip form made by 0.1.0 is reused, not made again
    assert compressed_layer(store, diff_id, "gzip").digest == form.digest
    store.close()


def test_the_migrated_cache_and_step_log_still_answer(v1_root: Path, tmp_path: Path) -> None:
    store = Store(v1_root)
    context = _v1_context(tmp_path)
    result = build(context, store=store)
    assert result.stats.executed == set()  # every step hit a record that 0.1.0 wrote
    assert result.config.diff_ids == image_config(store, store.resolve(V1_IMAGE)).diff_ids
    _v1_context(tmp_path, "hello v2\n")
    reasons = {name: state for _, name, state in explain(context, store=store)}
    assert any("hello.txt" in state for state in reasons.values()), reasons  # from the step log 0.1.0 kept


def _open(root: str) -> int:
    return Store(Path(root)).db.version


def test_two_processes_opening_an_old_store_migrate_it_once(v1_root: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        versions = pool.map(_open, [str(v1_root)] * 2)
    assert versions == [SCHEMA_VERSION, SCHEMA_VERSION]
    assert Store(v1_root).resolve(V1_IMAGE)


def test_a_database_from_a_newer_pybuild_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "root").close()
    database = sqlite3.connect(tmp_path / "root" / "meta.db")
    database.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    database.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, written by a newer pybuild"):
        Store(tmp_path / "root")


def test_a_damaged_database_is_named_and_the_cli_says_so(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "meta.db").write_bytes(b"this is not a database, just some text that is long enough " * 20)
    with pytest.raises(StoreError, match=r"database .*meta.db is damaged"):
        Store(root)
    result = subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "images"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "meta.db is damaged" in result.stderr and "Traceback" not in result.stderr


# -- the smaller interfaces: contract tests ----------------------------------------------------------------------


def sha256_of(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "root")


def test_forms_merge_what_is_known_and_tell_local_blobs(store: Store) -> None:
    diff_id = sha256_of(b"layer")
    local = store.blobs.put_bytes(b"compressed bytes")
    remote = sha256_of(b"only in a registry")
    store.forms.add(CompressedForm(diff_id, local, 16, "gzip", ""))
    store.forms.add(CompressedForm(diff_id, local, 16, "", "application/vnd.oci.image.layer.v1.tar+gzip"))
    store.forms.add(CompressedForm(diff_id, remote, 99, "", "application/vnd.oci.image.layer.v1.tar+zstd"))
    forms = {form.digest: form for form in store.forms.of(diff_id)}
    assert forms[local].algorithm == "gzip" and forms[local].media_type.endswith("+gzip") and forms[local].local
    assert not forms[remote].local
    assert store.forms.local(diff_id, "gzip") == forms[local]
    assert store.forms.local(diff_id, "zstd") is None
    store.forms.remove(diff_id, local)
    assert [form.digest for form in store.forms.of(diff_id)] == [remote]


def test_registry_records(store: Store) -> None:
    blob, manifest, image = (sha256_of(name.encode()) for name in ("blob", "manifest", "image"))
    store.registry.add_source(blob, "r.example:5000", "b/two")
    store.registry.add_source(blob, "r.example:5000", "a/one")
    store.registry.add_source(blob, "other.example", "c")
    assert store.registry.sources(blob, "r.example:5000") == ["a/one", "b/two"]
    assert store.registry.image_for_manifest("r.example:5000", "a/one", manifest) is None
    store.registry.add_manifest("r.example:5000", "a/one", manifest, image)
    assert store.registry.image_for_manifest("r.example:5000", "a/one", manifest) == image


def test_damage_is_refused_until_cleared(store: Store) -> None:
    digest = Digest("sha256", "ab" * 32)
    assert store.damage.get(digest) is None
    store.damage.mark(digest, "layer blob", "its bytes hash to sha256:00")
    with pytest.raises(DamagedContent, match="layer blob sha256:abab.* is damaged \\(its bytes hash to sha256:00\\)"):
        store.damage.refuse(digest)
    with pytest.raises(DamagedContent):
        store.layers.snapshot(digest)
    assert [damage.digest for damage in store.damage.all()] == [digest]
    store.damage.clear(digest)
    store.damage.refuse(digest)


def test_stat_cache_keys_are_any_bytes(store: Store) -> None:
    name = os.fsdecode(b"/ctx/caf\xe9.txt")  # Latin-1: not UTF-8
    store.stat_cache.put([(name, 1, 2, 3, 4, "d1"), ("/ctx/plain", 5, 6, 7, 8, "d2")])
    assert store.stat_cache.get([name, "/ctx/plain", "/ctx/missing"]) == {
        name: (1, 2, 3, 4, "d1"),
        "/ctx/plain": (5, 6, 7, 8, "d2"),
    }
    assert sorted(store.stat_cache.paths()) == sorted([name, "/ctx/plain"])
    store.stat_cache.delete([name])
    assert store.stat_cache.paths() == ["/ctx/plain"]


# -- pybuild system check -----------------------------------------------------------------------------------------


def _cli(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_system_check_finds_a_corrupt_blob_and_snapshot_and_from_refuses_the_image(
    v1_root: Path, tmp_path: Path
) -> None:
    clean = _cli(v1_root, "system", "check")
    assert clean.returncode == 0 and "no problems" in clean.stdout, clean.stderr
    store = Store(v1_root)
    image_id = store.resolve(V1_IMAGE)
    (diff_id,) = image_config(store, image_id).diff_ids
    blob = store.blobs.path(diff_id)
    data = bytearray(blob.read_bytes())
    data[600] ^= 0x01  # one bit inside hello.txt's content
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    store.close()

    found = _cli(v1_root, "system", "check")
    assert found.returncode == 1 and "Traceback" not in found.stderr
    assert f"damaged layer blob {diff_id}: its content hashes to sha256:" in found.stdout
    assert f"damaged image {V1_IMAGE} ({image_id.short})" in found.stdout

    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {V1_IMAGE}\nLABEL x=1\n")
    refused = _cli(v1_root, "build", str(context))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"layer blob {diff_id} is damaged (its content hashes to sha256:" in refused.stderr

    blob.write_bytes(bytes(data[:600]) + bytes([data[600] ^ 0x01]) + bytes(data[601:]))  # repaired by hand
    snapshot_file = Store(v1_root).snapshots.path(diff_id) / "hello.txt"
    snapshot_file.write_text("hello, tampered\n")
    tampered = _cli(v1_root, "system", "check")
    assert tampered.returncode == 1
    assert f"damaged layer snapshot {diff_id}: /hello.txt differs (size, content)" in tampered.stdout
    snapshot_file.write_text("hello v1\n")
    assert _cli(v1_root, "system", "check").returncode == 0
    assert _cli(v1_root, "build", str(context)).returncode == 0  # the damage record went with the damage
