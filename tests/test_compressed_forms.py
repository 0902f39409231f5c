"""After a push the store keeps each layer once: the compressed forms' bytes go, their records stay, and every later
push, cache export or metadata file finds the same digests (in the registry, or by compressing again)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, base_context
from registry_fixtures import RegistryServer, isolate_registry_env, push_test_base, run_registry

from buildkit_py.builder import build
from buildkit_py.digest import Digest
from buildkit_py.image.build_metadata import local_manifest
from buildkit_py.image.config import ImageConfig
from buildkit_py.registry.pull import pull_image
from buildkit_py.registry.push import push_image
from buildkit_py.store import Store


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    with (
        run_registry(tmp_path_factory.mktemp("forms-a"), None) as first,
        run_registry(tmp_path_factory.mktemp("forms-b"), None) as second,
    ):
        yield first, second


@pytest.fixture(autouse=True)
def own_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_registry_env(monkeypatch, tmp_path)


def _image(tmp_path: Path) -> tuple[Store, Digest, list[Digest]]:
    store = Store(tmp_path / "root")
    build(base_context(tmp_path), tags=[BASE_IMAGE], store=store)
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.bin").write_bytes(bytes(range(256)) * 4096)
    (project / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY data.bin /data.bin\nRUN echo made > /made\n")
    image_id = build(project, store=store).image_id
    diff_ids = list(ImageConfig.from_bytes(store.images.config_bytes(image_id)).diff_ids)
    return store, image_id, diff_ids


def _gzip_forms(store: Store, diff_id: Digest) -> list[tuple[Digest, bool]]:
    return [(form.digest, form.local) for form in store.forms.of(diff_id) if form.algorithm == "gzip"]


def test_a_pushed_layer_is_kept_once_and_every_later_use_finds_its_digest(
    registries: tuple[RegistryServer, RegistryServer], tmp_path: Path
) -> None:
    first, second = registries
    store, image_id, diff_ids = _image(tmp_path)
    store.tags.set(f"{first.host}/forms/app:1", image_id)
    pushed = push_image(store, f"{first.host}/forms/app:1")
    assert pushed.uploaded == len(diff_ids) + 1  # and the config
    for diff_id in diff_ids:
        forms = _gzip_forms(store, diff_id)
        assert forms and not any(local for _, local in forms), forms  # the record stays, the bytes went
        assert store.layers.has(diff_id)

    store.tags.set(f"{first.host}/forms/app:2", image_id)
    again = push_image(store, f"{first.host}/forms/app:2")
    assert (again.uploaded, again.blob_bytes_sent) == (0, 0)
    assert again.manifest_digest == pushed.manifest_digest

    store.tags.set(f"{second.host}/forms/app:1", image_id)
    elsewhere = push_image(store, f"{second.host}/forms/app:1")  # compressed again: the same bytes
    assert elsewhere.uploaded == pushed.uploaded
    assert elsewhere.manifest_digest == pushed.manifest_digest

    manifest = local_manifest(store, image_id)  # what --metadata-file reports, without compressing again
    assert [layer.digest for layer in manifest.layers] == [layer.digest for layer in pushed.manifest.layers]
    assert not any(local for diff_id in diff_ids for _, local in _gzip_forms(store, diff_id))


def test_a_cache_export_after_a_push_writes_the_layers_it_let_go(
    registries: tuple[RegistryServer, RegistryServer], tmp_path: Path
) -> None:
    first, _ = registries
    store, image_id, _ = _image(tmp_path)
    store.tags.set(f"{first.host}/forms/cache:1", image_id)
    pushed = push_image(store, f"{first.host}/forms/cache:1")
    cache = tmp_path / "cache"
    project = tmp_path / "project"
    build(project, store=store, cache_to=[f"type=local,dest={cache},mode=max"])
    index = json.loads((cache / "index.json").read_text())
    manifest = json.loads((cache / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    exported = {layer["digest"] for layer in manifest["layers"]}
    assert {str(layer.digest) for layer in pushed.manifest.layers[-2:]} <= exported
    for digest in exported:
        assert (cache / "blobs" / "sha256" / digest.split(":")[1]).is_file()

    base = push_test_base(first, store)  # the runner pulls the same base, as a CI runner does
    fresh = Store(tmp_path / "runner")
    pull_image(fresh, base)
    fresh.tags.set(BASE_IMAGE, fresh.resolve(base))
    imported = build(project, store=fresh, cache_from=[f"type=local,src={cache}"])
    assert not imported.stats.executed
    assert imported.image_id == image_id
