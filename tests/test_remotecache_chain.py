"""Caches along a chain of CI runners, each with an empty store: A builds and exports, B imports A's cache, builds and
exports its own, C imports B's. With mode=max, B downloads only what its image needs, yet its export carries every
record of A forward (the blobs B never fetched stay in A's layout or repository: copied into a local export,
cross-mounted into a registry one), so C finds all of them. With cache-mounts=true, the contents of the build's
`RUN --mount=type=cache` folders travel too, and B's first step that runs sees what A's left there; a corrupt or
hostile cache mount layer is a warning, and nothing of it lands outside the cache folder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_fixtures import RegistryServer, isolate_registry_env, push_test_base, run_registry
from test_remotecache import Messages, blob_gets, executed, make_project

from buildkit_py.builder import BuildResult, build, graph_states
from buildkit_py.digest import Digest
from buildkit_py.image.manifest import parse_index, parse_manifest
from buildkit_py.image.stored import image_config
from buildkit_py.remotecache.metadata import CACHE_FIELD
from buildkit_py.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root for namespaces and overlayfs")

CACHE_ID = "travel"
MOUNT_DOCKERFILE = """\
FROM {base}
ARG RUNNER
RUN --mount=type=cache,target=/cache,id=travel,uid=1234,gid=5678,mode=0750 \\
    echo "$RUNNER" >> /cache/log && cp /cache/log /seen && stat -c %u:%g:%a /cache > /owner
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with run_registry(tmp_path_factory.mktemp("chain-registry"), None) as server:
        yield server


@pytest.fixture(scope="module")
def base_ref(registry: RegistryServer, base_store: Store) -> str:
    return push_test_base(registry, base_store)


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_registry_env(monkeypatch, tmp_path)


def runners(tmp_path: Path, *names: str) -> list[Store]:
    return [Store(tmp_path / f"runner-{name}") for name in names]


def layout_document(cache: Path) -> dict[str, Any]:
    index = parse_index((cache / "index.json").read_bytes())
    manifest = parse_manifest((cache / "blobs" / "sha256" / index.manifests[0].digest.hex).read_bytes())
    config = json.loads((cache / "blobs" / "sha256" / manifest.config.digest.hex).read_bytes())
    document: dict[str, Any] = config[CACHE_FIELD]
    return document


def registry_document(registry: RegistryServer, repository: str, tag: str, work: Path) -> dict[str, Any]:
    from buildkit_py.registry.client import RegistryClient
    from buildkit_py.registry.pull import download_blob, fetch_manifest

    with RegistryClient(registry.host) as client:
        body, media_type, _ = fetch_manifest(client, repository, tag)
        manifest = parse_manifest(body, media_type)
        download_blob(client, repository, manifest.config, work / "config.json")
    config = json.loads((work / "config.json").read_bytes())
    document: dict[str, Any] = config[CACHE_FIELD]
    return document


def explained_states(project: Path, store: Store, cache_from: str, target: str | None = None) -> dict[str, str]:
    fields: dict[str, Any] = {"cache_from": [cache_from]}
    if target is not None:
        fields["target"] = target
    states = graph_states(project, store=store, **fields)
    return {re.sub(r"^\[[^\]]*\]\s*", "", name): state for _, name, state in states.lines}


# -- records carried forward under mode=max ------------------------------------------------------------------------


def test_a_registry_chain_keeps_every_record_of_mode_max(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    name = uuid.uuid4().hex[:12]
    repo_a, repo_b = f"chain/{name}-a", f"chain/{name}-b"
    a, b, c = runners(tmp_path, "a", "b", "c")
    project = make_project(tmp_path / "app", base_ref)
    first = build(project, store=a, cache_to=[f"type=registry,ref={registry.host}/{repo_a}:main,mode=max"])
    records_a = set(registry_document(registry, repo_a, "main", tmp_path)["records"])
    assert first.cache_exports[0].records == len(records_a) >= 20

    messages = Messages()
    second = build(
        project,
        store=b,
        cache_from=[f"{registry.host}/{repo_a}:main"],
        cache_to=[f"type=registry,ref={registry.host}/{repo_b}:main,mode=max"],
        progress=messages,
    )
    assert executed(second) == set()
    builder_only = _builder_only_layers(a, first, base_ref)
    assert builder_only and not any(b.layers.has(diff_id) for diff_id in builder_only)  # B never downloaded them
    report = second.cache_exports[0]
    assert report.error == "" and report.records == len(records_a) and report.carried >= len(builder_only)
    assert "carried forward" in str(messages)
    assert set(registry_document(registry, repo_b, "main", tmp_path)["records"]) == records_a
    # B's repository got the blobs it never fetched by a cross-repository mount, not by an upload from B.
    assert re.search(
        rf'"POST /v2/{re.escape(repo_b)}/blobs/uploads/\?mount=sha256:[0-9a-f]{{64}}&from=', registry.log()
    )
    fetched_by_b = {Digest.parse(digest) for digest in blob_gets(registry, repo_a)}
    assert not fetched_by_b & _blobs_of(a, builder_only)

    # C, from B's cache only: its explanation of the builder stage says it comes from there, building that stage
    # runs nothing, and every record of A is a hit (its layers in B's repository, or here).
    states = explained_states(project, c, f"{registry.host}/{repo_b}:main", target="builder")
    assert states["RUN echo unused > /builder-only"] == f"cached: from registry {registry.host}/{repo_b}:main"
    assert all(state.startswith(("cached: from", "not needed")) for state in states.values()), states
    builder = build(project, store=c, target="builder", cache_from=[f"{registry.host}/{repo_b}:main"])
    assert executed(builder) == set()
    assert_finds_every_record(c, f"{registry.host}/{repo_b}:main", records_a)


def test_a_local_chain_keeps_every_record_of_mode_max(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    a, b, c = runners(tmp_path, "a", "b", "c")
    project = make_project(tmp_path / "app", base_ref)
    cache_a, cache_b = tmp_path / "cache-a", tmp_path / "cache-b"
    first = build(project, store=a, cache_to=[f"type=local,dest={cache_a},mode=max"])
    records_a = set(layout_document(cache_a)["records"])
    second = build(
        project,
        store=b,
        cache_from=[f"type=local,src={cache_a}"],
        cache_to=[f"type=local,dest={cache_b},mode=max"],
    )
    assert executed(second) == set()
    builder_only = _builder_only_layers(a, first, base_ref)
    assert builder_only and not any(b.layers.has(diff_id) for diff_id in builder_only)
    assert set(layout_document(cache_b)["records"]) == records_a
    assert second.cache_exports[0].carried >= len(builder_only)

    shutil.rmtree(cache_a)  # C has only B's cache: every blob must be in it
    restored = tmp_path / "ci-restored"
    shutil.copytree(cache_b, restored)
    states = explained_states(project, c, f"type=local,src={restored}", target="builder")
    assert states["RUN echo unused > /builder-only"] == f"cached: from local {restored}"
    builder = build(project, store=c, target="builder", cache_from=[f"type=local,src={restored}"])
    assert executed(builder) == set()
    assert_finds_every_record(c, f"type=local,src={restored}", records_a)
    full = build(project, store=c, cache_from=[f"type=local,src={restored}"])
    assert executed(full) == set() and full.image_id == first.image_id


def test_a_chain_across_kinds_downloads_and_uploads_what_it_carries(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    """registry -> local (carried blobs downloaded, verified) -> another registry repository (uploaded from the
    layout, as no mount source is known) -> D finds every record."""
    name = uuid.uuid4().hex[:12]
    repo_a, repo_c = f"chain/{name}-a", f"chain/{name}-c"
    a, b, c, d = runners(tmp_path, "a", "b", "c", "d")
    project = make_project(tmp_path / "app", base_ref)
    cache_b = tmp_path / "cache-b"
    first = build(project, store=a, cache_to=[f"type=registry,ref={registry.host}/{repo_a}:main,mode=max"])
    records_a = set(registry_document(registry, repo_a, "main", tmp_path)["records"])
    build(
        project,
        store=b,
        cache_from=[f"{registry.host}/{repo_a}:main"],
        cache_to=[f"type=local,dest={cache_b},mode=max"],
    )
    assert set(layout_document(cache_b)["records"]) == records_a
    builder_only = _builder_only_layers(a, first, base_ref)
    assert not any(b.layers.has(diff_id) for diff_id in builder_only)
    third = build(
        project,
        store=c,
        cache_from=[f"type=local,src={cache_b}"],
        cache_to=[f"type=registry,ref={registry.host}/{repo_c}:main,mode=max"],
    )
    assert third.cache_exports[0].error == "" and third.cache_exports[0].carried >= len(builder_only)
    assert set(registry_document(registry, repo_c, "main", tmp_path)["records"]) == records_a
    builder = build(project, store=d, target="builder", cache_from=[f"{registry.host}/{repo_c}:main"])
    assert executed(builder) == set()
    assert_finds_every_record(d, f"{registry.host}/{repo_c}:main", records_a)


def test_a_record_whose_carried_layer_is_corrupt_is_left_out_with_a_warning(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    a, b = runners(tmp_path, "a", "b")
    project = make_project(tmp_path / "app", base_ref)
    cache_a, cache_b = tmp_path / "cache-a", tmp_path / "cache-b"
    first = build(project, store=a, cache_to=[f"type=local,dest={cache_a},mode=max"])
    records_a = layout_document(cache_a)["records"]
    victim = min(_builder_only_layers(a, first, base_ref), key=str)
    (blob,) = _blobs_of(a, {victim})
    path = cache_a / "blobs" / "sha256" / blob.hex
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    messages = Messages()
    second = build(
        project,
        store=b,
        cache_from=[f"type=local,src={cache_a}"],
        cache_to=[f"type=local,dest={cache_b},mode=max"],
        progress=messages,
    )
    assert executed(second) == set()
    report = second.cache_exports[0]
    assert report.error == "", report.error
    assert f"[Warning] cache local {cache_a}: blob {blob} hashes to" in str(messages)
    kept = layout_document(cache_b)["records"]
    needing = {key for key, record in records_a.items() if str(victim) in record["chain"]}
    assert needing and set(kept) == set(records_a) - needing


def assert_finds_every_record(store: Store, cache_from: str, keys: set[str]) -> None:
    """Each of `keys` is a hit in the cache, with every layer of its chain there (or in the store)."""
    from buildkit_py.remotecache.session import open_view
    from buildkit_py.remotecache.spec import parse_cache_from

    view = open_view(store, [parse_cache_from(cache_from)], lambda text: None, "test")
    try:
        missing = [key for key in keys if view.get(Digest.parse(key)) is None]
    finally:
        view.close()
    assert not missing


def _builder_only_layers(store: Store, result: BuildResult, base_ref: str) -> set[Digest]:
    """Layers A made in the builder stage: in A's store, in neither the base nor the final image."""
    base = set(image_config(store, store.resolve(base_ref)).diff_ids)
    everything = {diff_id for record in store.cache.records() for diff_id in record.chain}
    return everything - base - set(result.config.diff_ids)


def _blobs_of(store: Store, diff_ids: set[Digest]) -> set[Digest]:
    return {form.digest for form in store.forms.all() if form.diff_id in diff_ids}


# -- cache mounts that travel -------------------------------------------------------------------------------------


def mount_project(folder: Path, base: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(MOUNT_DOCKERFILE.format(base=base))
    return folder


def image_file(store: Store, result: BuildResult, path: str) -> str:
    """A file of the image's last layer."""
    with store.layers.open(result.config.diff_ids[-1]) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if member.name == path.lstrip("/") and member.isreg():
                extracted = archive.extractfile(member)
                assert extracted is not None
                return extracted.read().decode()
    raise AssertionError(f"{path} is not in the last layer")


def mount_folder(store: Store) -> Path:
    (record,) = [record for record in store.cache_mounts.records() if record.id == CACHE_ID]
    return store.root / "cache-mounts" / record.folder / "data"


def test_cache_mounts_travel_through_a_local_cache(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    a, b = runners(tmp_path, "a", "b")
    project = mount_project(tmp_path / "app", base_ref)
    cache = tmp_path / "ci-cache"
    to = f"type=local,dest={cache},cache-mounts=true"
    first = build(project, store=a, build_args={"RUNNER": "a"}, cache_to=[to])
    assert image_file(a, first, "/seen") == "a\n"
    assert first.cache_exports[0].mounts == 1
    (mount,) = layout_document(cache)["cache_mounts"]["mounts"]
    assert (mount["id"], mount["uid"], mount["gid"], mount["mode"]) == (CACHE_ID, 1234, 5678, 0o750)
    again = build(project, store=a, build_args={"RUNNER": "a"}, cache_to=[to])
    assert again.cache_exports[0].unchanged  # an unchanged folder packs to the same bytes

    messages = Messages()
    second = build(
        project, store=b, build_args={"RUNNER": "b"}, cache_from=[f"type=local,src={cache}"], progress=messages
    )
    assert len(executed(second)) == 1  # the RUN: RUNNER is part of its key
    assert image_file(b, second, "/seen") == "a\nb\n"
    assert image_file(b, second, "/owner") == "1234:5678:750\n"
    assert f"importing cache mount {CACHE_ID} from local {cache}" in str(messages)
    folder = mount_folder(b)
    assert (folder / "log").read_text() == "a\nb\n"
    info = os.lstat(folder)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1234, 5678, 0o750)


def test_cache_mounts_travel_through_a_registry(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    ref = f"{registry.host}/mounts/{uuid.uuid4().hex[:12]}:cache"
    a, b, c = runners(tmp_path, "a", "b", "c")
    project = mount_project(tmp_path / "app", base_ref)
    build(project, store=a, build_args={"RUNNER": "a"}, cache_to=[f"type=registry,ref={ref},cache-mounts=true"])
    second = build(
        project,
        store=b,
        build_args={"RUNNER": "b"},
        cache_from=[ref],
        cache_to=[f"type=registry,ref={ref},cache-mounts=true"],
    )
    assert image_file(b, second, "/seen") == "a\nb\n"
    third = build(project, store=c, build_args={"RUNNER": "c"}, cache_from=[ref])
    assert image_file(c, third, "/seen") == "a\nb\nc\n"


def test_a_cache_mount_with_content_here_is_kept_and_an_empty_one_is_filled(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    a, b, c = runners(tmp_path, "a", "b", "c")
    project = mount_project(tmp_path / "app", base_ref)
    cache = tmp_path / "ci-cache"
    build(project, store=a, build_args={"RUNNER": "a"}, cache_to=[f"type=local,dest={cache},cache-mounts=true"])

    build(project, store=b, build_args={"RUNNER": "b0"})  # B's own cache has content: it is kept
    messages = Messages()
    kept = build(
        project, store=b, build_args={"RUNNER": "b"}, cache_from=[f"type=local,src={cache}"], progress=messages
    )
    assert image_file(b, kept, "/seen") == "b0\nb\n"
    assert f"cache mount {CACHE_ID}: the local one is kept" in str(messages)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "Dockerfile").write_text(f"FROM {base_ref}\nRUN --mount=type=cache,target=/cache,id={CACHE_ID} true\n")
    build(empty, store=c)
    assert mount_folder(c).is_dir() and not any(mount_folder(c).iterdir())
    filled = build(project, store=c, build_args={"RUNNER": "c"}, cache_from=[f"type=local,src={cache}"])
    assert image_file(c, filled, "/seen") == "a\nc\n"


# -- bad cache mount layers ----------------------------------------------------------------------------------------


def _entry(name: str, kind: bytes, *, data: bytes = b"", linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, linkname, mode, len(data)
    return info


def _tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _replace_mount_layer(cache: Path, layer: bytes) -> None:
    """Make the layout's cache mount layer `layer` (uncompressed), with every digest that names it updated: a layer
    whose digests are right, whatever it holds."""
    blobs = cache / "blobs" / "sha256"
    index = json.loads((cache / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].removeprefix("sha256:")).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    mount = config[CACHE_FIELD]["cache_mounts"]["mounts"][0]
    position = config["rootfs"]["diff_ids"].index(mount["layer"])
    digest = f"sha256:{hashlib.sha256(layer).hexdigest()}"
    (blobs / digest.removeprefix("sha256:")).write_bytes(layer)
    mount["layer"] = config["rootfs"]["diff_ids"][position] = digest
    manifest["layers"][position] = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": digest,
        "size": len(layer),
    }
    config_bytes = json.dumps(config).encode()
    (blobs / hashlib.sha256(config_bytes).hexdigest()).write_bytes(config_bytes)
    manifest["config"].update(digest=f"sha256:{hashlib.sha256(config_bytes).hexdigest()}", size=len(config_bytes))
    manifest_bytes = json.dumps(manifest).encode()
    (blobs / hashlib.sha256(manifest_bytes).hexdigest()).write_bytes(manifest_bytes)
    index["manifests"][0].update(
        digest=f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}", size=len(manifest_bytes)
    )
    (cache / "index.json").write_text(json.dumps(index))


HOSTILE_LAYERS = {
    "escape": [(_entry("../../escaped", tarfile.REGTYPE, data=b"out"), b"out")],
    "device": [(_entry("null", tarfile.CHRTYPE), b"")],
    "fifo": [(_entry("pipe", tarfile.FIFOTYPE), b"")],
    "whiteout": [(_entry(".wh.log", tarfile.REGTYPE), b"")],
    "through-symlink": [
        (_entry("link", tarfile.SYMTYPE, linkname="/tmp"), b""),
        (_entry("link/escaped", tarfile.REGTYPE, data=b"out"), b"out"),
    ],
    "hardlink-out": [(_entry("passwd", tarfile.LNKTYPE, linkname="/etc/passwd"), b"")],
}


@pytest.fixture(scope="module")
def exported_mount_cache(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, base_ref: str
) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mount-cache")
    project = mount_project(folder / "app", base_ref)
    cache = folder / "cache"
    build(project, store=Store(folder / "runner-a"), build_args={"RUNNER": "a"},
          cache_to=[f"type=local,dest={cache},cache-mounts=true"])  # fmt: skip
    return project, cache


@pytest.mark.parametrize("case", ["corrupt", *HOSTILE_LAYERS])
def test_a_bad_cache_mount_layer_is_a_warning_and_lands_nowhere(
    tmp_path: Path, exported_mount_cache: tuple[Path, Path], case: str
) -> None:
    project, original = exported_mount_cache
    cache = tmp_path / "cache"
    shutil.copytree(original, cache)
    if case == "corrupt":
        (mount,) = layout_document(cache)["cache_mounts"]["mounts"]
        index = parse_index((cache / "index.json").read_bytes())
        manifest = parse_manifest((cache / "blobs" / "sha256" / index.manifests[0].digest.hex).read_bytes())
        config_layers = json.loads((cache / "blobs" / "sha256" / manifest.config.digest.hex).read_bytes())
        position = config_layers["rootfs"]["diff_ids"].index(mount["layer"])
        path = cache / "blobs" / "sha256" / manifest.layers[position].digest.hex
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        _replace_mount_layer(cache, _tar(HOSTILE_LAYERS[case]))
    store = Store(tmp_path / "runner-b")
    messages = Messages()
    result = build(
        project, store=store, build_args={"RUNNER": "b"}, cache_from=[f"type=local,src={cache}"], progress=messages
    )
    assert f"[Warning] cache local {cache}: cache mount {CACHE_ID} cannot be used" in str(messages), str(messages)
    assert image_file(store, result, "/seen") == "b\n"  # the step ran on a fresh cache
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    for path in (store.root / "cache-mounts").rglob("*"):
        mode = os.lstat(path).st_mode
        assert not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)), path


def test_cache_mounts_of_a_newer_format_are_skipped_and_the_records_used(
    tmp_path: Path, exported_mount_cache: tuple[Path, Path]
) -> None:
    project, original = exported_mount_cache
    cache = tmp_path / "cache"
    shutil.copytree(original, cache)
    blobs = cache / "blobs" / "sha256"
    index = json.loads((cache / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].removeprefix("sha256:")).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    config[CACHE_FIELD]["cache_mounts"]["version"] = 99
    from test_remotecache import _replace_config

    _replace_config(cache, json.dumps(config).encode())
    messages = Messages()
    result = build(
        project, store=Store(tmp_path / "b"), build_args={"RUNNER": "a"}, cache_from=[f"type=local,src={cache}"],
        progress=messages,
    )  # fmt: skip
    assert "cache mounts are format 99, from a newer pybuild" in str(messages)
    assert executed(result) == set()
