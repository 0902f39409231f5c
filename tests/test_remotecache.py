"""Caches that travel between two simulated CI runners: two empty stores, a real docker-registry on 127.0.0.1, a
local cache folder copied from one runner to the other as a CI cache step would, and inline cache in a pushed image.

Runner A builds a 20-step, two-stage project and exports its cache; runner B, with an empty store, imports it and
builds. B must run no step and download from the cache only the blobs of its own image (the registry's access log
counts them), then, after one late file changes, run only the steps after that COPY."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_fixtures import RegistryServer, isolate_registry_env, push_test_base, run_registry

from buildkit_py.builder import BuildResult, build
from buildkit_py.digest import Digest
from buildkit_py.image.manifest import parse_index, parse_manifest
from buildkit_py.registry.push import push_image
from buildkit_py.remotecache.metadata import CACHE_FIELD
from buildkit_py.solver.progress import BuildMessage, ProgressEvent
from buildkit_py.store import Store

REPO = Path(__file__).resolve().parents[1]

DOCKERFILE = """\
FROM {base} AS builder
RUN echo built > /artifact
RUN echo more >> /artifact
RUN echo unused > /builder-only

FROM {base}
COPY early.txt /app/early.txt
RUN cat /app/early.txt > /app/e1
RUN echo 3 > /app/s3
RUN echo 4 > /app/s4
ENV STEP=5
RUN echo "$STEP" > /app/s5
RUN echo 6 > /app/s6
RUN echo 7 > /app/s7
COPY --from=builder /artifact /app/artifact
RUN cat /app/artifact > /app/artifact-copy
RUN echo 10 > /app/s10
RUN echo 11 > /app/s11
WORKDIR /app
RUN echo 13 > s13
RUN echo 14 > s14
COPY middle.txt /app/middle.txt
RUN echo 16 > s16
COPY late.txt /app/late.txt
RUN cat /app/late.txt > /app/late-copy
CMD ["cat", "/app/late-copy"]
"""
AFTER_LATE = {"COPY late.txt /app/late.txt", "RUN cat /app/late.txt > /app/late-copy"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with run_registry(tmp_path_factory.mktemp("cache-registry"), None) as server:
        yield server


@pytest.fixture(scope="module")
def base_ref(registry: RegistryServer, base_store: Store) -> str:
    """The busybox base, pushed: each runner pulls it when it resolves FROM, as a CI runner pulls its base."""
    return push_test_base(registry, base_store)


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_registry_env(monkeypatch, tmp_path)


def make_project(folder: Path, base: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    for name in ("early", "middle", "late"):
        (folder / f"{name}.txt").write_text(f"{name} {folder.name}\n")
    return folder


class Messages:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, BuildMessage):
            self.lines.append(event.text)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def executed(result: BuildResult) -> set[str]:
    return {re.sub(r"^\[[^\]]*\]\s*", "", result.plan.graph.meta(op).name) for op in result.stats.executed}


def blob_gets(registry: RegistryServer, repository: str) -> list[str]:
    """Digests of the blobs of `repository` fetched with GET, from the registry's access log."""
    return re.findall(rf'"GET /v2/{re.escape(repository)}/blobs/(sha256:[0-9a-f]{{64}})', registry.log())


def non_base_layers(store: Store, result: BuildResult, base: str) -> list[Digest]:
    from buildkit_py.image.stored import image_config

    base_ids = set(image_config(store, store.resolve(base)).diff_ids)
    return [diff_id for diff_id in result.config.diff_ids if diff_id not in base_ids]


def two_roots(tmp_path: Path) -> tuple[Store, Store]:
    return Store(tmp_path / "runner-a"), Store(tmp_path / "runner-b")


# -- registry ------------------------------------------------------------------------------------------------------


def test_registry_cache_runner_b_runs_nothing_and_fetches_only_its_image(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    repository = f"cache/{uuid.uuid4().hex[:12]}"
    cache_ref = f"{registry.host}/{repository}:main"
    a, b = two_roots(tmp_path)
    project_a = make_project(tmp_path / "checkout-a" / "app", base_ref)
    first = build(project_a, store=a, cache_to=[f"type=registry,ref={cache_ref},mode=max"])
    assert [report.error for report in first.cache_exports] == [""]
    assert first.cache_exports[0].records >= 20

    project_b = tmp_path / "checkout-b" / "app"  # another folder: keys hold no absolute path
    shutil.copytree(project_a, project_b)
    messages = Messages()
    second = build(project_b, store=b, cache_from=[f"type=registry,ref={cache_ref}"], progress=messages)
    assert executed(second) == set()
    assert second.image_id == first.image_id  # same layers and the same history dates
    fetched = blob_gets(registry, repository)
    manifest_layers = {layer.digest: layer for layer in _registry_manifest(registry, repository, "main").layers}
    image_blobs = {blob for blob in manifest_layers if _diff_id_of(a, blob) in set(second.config.diff_ids)}
    layer_fetches = [digest for digest in fetched if Digest.parse(digest) in manifest_layers]
    assert sorted(set(layer_fetches)) == sorted(str(blob) for blob in image_blobs)
    assert len(layer_fetches) == len(set(layer_fetches))  # none twice
    builder_only = set(manifest_layers) - image_blobs
    assert builder_only and not builder_only & {Digest.parse(d) for d in fetched}  # the builder's: never fetched
    assert "importing cache manifest from registry" in str(messages)
    assert re.search(r"importing cache layer \w+ from registry .*: [\d.]+ \w?B [\d.]+s", str(messages))

    # The next build on B hits locally: the imported records became B's own.
    again = build(project_b, store=b)
    assert executed(again) == set() and again.image_id == first.image_id

    (project_b / "late.txt").write_text("late, edited\n")
    changed = build(project_b, store=b, cache_from=[cache_ref])
    assert executed(changed) == AFTER_LATE
    assert changed.stats.reasons  # the miss is explained with A's step log
    reasons = {
        re.sub(r"^\[[^\]]*\]\s*", "", changed.plan.graph.meta(op).name): r for op, r in changed.stats.reasons.items()
    }
    assert "late.txt" in reasons["COPY late.txt /app/late.txt"]


def test_an_unchanged_cache_is_not_pushed_again(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    repository = f"cache/{uuid.uuid4().hex[:12]}"
    cache_ref = f"{registry.host}/{repository}:main"
    store = Store(tmp_path / "root")
    project = make_project(tmp_path / "app", base_ref)
    build(project, store=store, cache_to=[f"type=registry,ref={cache_ref},mode=max"])
    uploads = registry.blob_upload_requests()
    again = build(project, store=store, cache_to=[f"type=registry,ref={cache_ref},mode=max"])
    assert again.cache_exports[0].unchanged and again.cache_exports[0].sent == 0
    assert registry.blob_upload_requests() == uploads
    (project / "late.txt").write_text("late, edited\n")
    changed = build(project, store=store, cache_to=[f"type=registry,ref={cache_ref},mode=max,compression=zstd"])
    report = changed.cache_exports[0]
    assert report.error == "" and not report.unchanged
    manifest = _registry_manifest(registry, repository, "main")
    assert {layer.media_type for layer in manifest.layers} == {"application/vnd.oci.image.layer.v1.tar+zstd"}


def test_skopeo_inspects_the_cache_and_the_image_it_belongs_to(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    name = uuid.uuid4().hex[:12]
    store = Store(tmp_path / "root")
    project = make_project(tmp_path / "app", base_ref)
    image_ref = f"{registry.host}/apps/{name}:1"
    cache_ref = f"{registry.host}/apps/{name}:cache"
    build(project, store=store, tags=[image_ref], cache_to=[f"type=registry,ref={cache_ref}", "type=inline"])
    push_image(store, image_ref)
    for ref in (image_ref, cache_ref):
        inspected = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, text=True, check=False
        )
        assert inspected.returncode == 0, inspected.stderr
        assert json.loads(inspected.stdout)["Os"] == "linux"


@pytest.mark.docker
def test_docker_pulls_an_image_with_inline_cache(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    name = uuid.uuid4().hex[:12]
    store = Store(tmp_path / "root")
    project = make_project(tmp_path / "app", base_ref)
    image_ref = f"{registry.host}/apps/{name}:1"
    build(project, store=store, tags=[image_ref], cache_to=["type=inline"])
    push_image(store, image_ref)
    try:
        pulled = subprocess.run(["/usr/bin/docker", "pull", image_ref], capture_output=True, text=True, check=False)
        assert pulled.returncode == 0, pulled.stderr
        ran = subprocess.run(
            ["/usr/bin/docker", "run", "--rm", "--network=none", image_ref], capture_output=True, text=True, check=False
        )
        assert ran.stdout == "late app\n", ran.stderr
    finally:
        subprocess.run(["/usr/bin/docker", "rmi", "-f", image_ref], capture_output=True, check=False)


# -- inline ----------------------------------------------------------------------------------------------------------


def test_inline_cache_travels_in_the_pushed_image(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    repository = f"apps/{uuid.uuid4().hex[:12]}"
    image_ref = f"{registry.host}/{repository}:1"
    a, b = two_roots(tmp_path)
    project = make_project(tmp_path / "app", base_ref)
    first = build(project, store=a, tags=[image_ref], cache_to=["type=inline"])
    assert CACHE_FIELD in json.loads(a.images.config_bytes(first.image_id))
    push_image(a, image_ref)
    second = build(project, store=b, cache_from=[image_ref])
    assert executed(second) == set()
    assert second.config.diff_ids == first.config.diff_ids
    fetched = {Digest.parse(d) for d in blob_gets(registry, repository)}
    pushed = _registry_manifest(registry, repository, "1")
    assert {
        layer.digest for layer in pushed.layers[len(pushed.layers) - len(non_base_layers(a, first, base_ref)) :]
    } <= fetched
    (project / "late.txt").write_text("late, edited\n")
    changed = build(project, store=Store(tmp_path / "runner-c"), cache_from=[image_ref])
    assert executed(changed) == AFTER_LATE


# -- local -----------------------------------------------------------------------------------------------------------


def test_local_cache_copied_between_runners(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    a, b = two_roots(tmp_path)
    project = make_project(tmp_path / "app", base_ref)
    exported = tmp_path / "ci-cache-a"
    first = build(project, store=a, cache_to=[f"type=local,dest={exported},mode=max,compression=zstd"])
    assert first.cache_exports[0].error == ""
    layout = json.loads((exported / "index.json").read_text())
    assert layout["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    inspected = subprocess.run(
        ["skopeo", "inspect", f"oci:{exported}:latest"], capture_output=True, text=True, check=False
    )
    assert inspected.returncode == 0, inspected.stderr

    restored = tmp_path / "ci-cache-b"
    shutil.copytree(exported, restored)  # the CI system's cache step
    second = build(project, store=b, cache_from=[f"type=local,src={restored}"])
    assert executed(second) == set() and second.image_id == first.image_id
    builder_only = set(_layout_diff_ids(exported)) - set(first.config.diff_ids)
    assert builder_only and not any(b.layers.has(diff_id) for diff_id in builder_only)  # never fetched

    (project / "late.txt").write_text("late, edited\n")
    changed = build(project, store=b, cache_from=[f"type=local,src={restored}"])
    assert executed(changed) == AFTER_LATE


def test_a_local_export_replaces_the_index_last_and_drops_old_blobs(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    store = Store(tmp_path / "root")
    project = make_project(tmp_path / "app", base_ref)
    cache = tmp_path / "cache"
    build(project, store=store, cache_to=[f"type=local,dest={cache}"])
    before = set(_layout_blobs(cache))
    (project / "late.txt").write_text("late, edited\n")
    build(project, store=store, cache_to=[f"type=local,dest={cache}"])
    after = set(_layout_blobs(cache))
    assert after != before
    assert set(_named_blobs(cache)) == after  # every blob is named by the index, none missing, none left over
    assert not [path for path in cache.rglob("*") if path.name.endswith(".partial")]


# -- bad input -------------------------------------------------------------------------------------------------------


def test_a_missing_cache_is_a_warning_on_a_first_run(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    project = make_project(tmp_path / "app", base_ref)
    messages = Messages()
    result = build(
        project,
        store=Store(tmp_path / "root"),
        cache_from=[f"{registry.host}/cache/never-pushed:main", f"type=local,src={tmp_path / 'nothing'}"],
        progress=messages,
    )
    assert len(executed(result)) >= 20
    assert "[Warning] cache registry:" in str(messages) and "not found" in str(messages)
    assert f"[Warning] cache local:{tmp_path / 'nothing'}" in str(messages)


def _exported(tmp_path: Path, base_ref: str, name: str) -> tuple[Path, Path, BuildResult]:
    project = make_project(tmp_path / name, base_ref)
    cache = tmp_path / f"{name}-cache"
    result = build(project, store=Store(tmp_path / f"{name}-a"), cache_to=[f"type=local,dest={cache}"])
    return project, cache, result


def test_a_blob_with_the_wrong_digest_is_named_and_its_steps_run(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    project, cache, first = _exported(tmp_path, base_ref, "corrupt")
    manifest = _layout_manifest(cache)
    victim = manifest.layers[-1].digest  # the last step's layer
    path = cache / "blobs" / "sha256" / victim.hex
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    messages = Messages()
    store = Store(tmp_path / "corrupt-b")
    result = build(project, store=store, cache_from=[f"type=local,src={cache}"], progress=messages)
    assert victim.hex[:12] in str(messages) and "[Warning]" in str(messages)
    assert executed(result) == {"RUN cat /app/late.txt > /app/late-copy"}
    assert result.config.diff_ids[:-1] == first.config.diff_ids[:-1]
    for digest in store.blobs.iter_digests():
        store.blobs.verify(digest)  # nothing unverified entered the store


def test_half_a_layout_is_named_and_its_steps_run(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    project, cache, first = _exported(tmp_path, base_ref, "half")
    manifest = _layout_manifest(cache)
    for layer in manifest.layers[len(manifest.layers) // 2 :]:
        (cache / "blobs" / "sha256" / layer.digest.hex).unlink()
    messages = Messages()
    result = build(project, store=Store(tmp_path / "half-b"), cache_from=[f"type=local,src={cache}"], progress=messages)
    assert "[Warning]" in str(messages) and "has no file blobs/sha256/" in str(messages)
    assert 0 < len(executed(result)) < 20
    assert len(result.config.diff_ids) == len(first.config.diff_ids)


def test_metadata_from_a_future_version_is_refused_with_a_warning(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    project, cache, _ = _exported(tmp_path, base_ref, "future")
    manifest = _layout_manifest(cache)
    config = json.loads((cache / "blobs" / "sha256" / manifest.config.digest.hex).read_bytes())
    config[CACHE_FIELD]["version"] = 99
    _replace_config(cache, json.dumps(config).encode())
    messages = Messages()
    result = build(
        project, store=Store(tmp_path / "future-b"), cache_from=[f"type=local,src={cache}"], progress=messages
    )
    assert "version 99, from a newer pybuild" in str(messages)
    assert len(executed(result)) >= 20


def test_a_failed_export_keeps_the_image_and_sets_the_exit_code(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    project = make_project(tmp_path / "app", base_ref)
    root = tmp_path / "root"
    # A port bound here and never listened on: connections are refused, and nobody else can take it meanwhile.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{holder.getsockname()[1]}/cache/app:main"
    command = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "build", "--progress=plain"]
    failed = subprocess.run(
        [*command, "-t", "app:failed-export", "--cache-to", f"type=registry,ref={dead}", str(project)],
        capture_output=True,
        check=False,
        text=True,
        cwd=REPO,
    )
    assert failed.returncode == 1
    assert f"exporting cache to registry:{dead} failed" in failed.stderr
    assert "Successfully tagged app:failed-export" in failed.stdout
    ignored = subprocess.run(
        [
            *command,
            "--cache-to",
            f"type=registry,ref={dead},ignore-error=true",
            "--metadata-file",
            str(tmp_path / "m.json"),
            str(project),
        ],
        capture_output=True,
        check=False,
        text=True,
        cwd=REPO,
    )
    assert ignored.returncode == 0, ignored.stderr
    metadata = json.loads((tmp_path / "m.json").read_text())
    assert metadata["containerimage.config.digest"].startswith("sha256:")


def test_explain_says_where_each_step_would_come_from(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    project, cache, _ = _exported(tmp_path, base_ref, "explain")
    root = tmp_path / "explain-b"
    (project / "late.txt").write_text("late, edited\n")
    command = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "build", "--explain"]
    shown = subprocess.run(
        [*command, "--cache-from", f"type=local,src={cache}", str(project)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    lines = dict(re.findall(r"^#\d+ (?:\[[^\]]*\] )?(.*?): (.*)$", shown.stdout, re.MULTILINE))
    assert lines["RUN echo 16 > s16"] == f"cached: from local {cache}"
    assert "late.txt" in lines["COPY late.txt /app/late.txt"]  # would run, and why (A's step log travelled)
    assert (
        lines["RUN cat /app/late.txt > /app/late-copy"] == "parent step #23 was rebuilt"
        or "rebuilt" in lines["RUN cat /app/late.txt > /app/late-copy"]
    )


# -- helpers ---------------------------------------------------------------------------------------------------------


def _registry_manifest(registry: RegistryServer, repository: str, tag: str):  # type: ignore[no-untyped-def]
    from buildkit_py.registry.client import RegistryClient
    from buildkit_py.registry.pull import fetch_manifest

    with RegistryClient(registry.host) as client:
        body, media_type, _ = fetch_manifest(client, repository, tag)
    return parse_manifest(body, media_type)


def _diff_id_of(store: Store, blob: Digest) -> Digest | None:
    for form in store.forms.all():
        if form.digest == blob:
            return form.diff_id
    return None


def _layout_manifest(cache: Path):  # type: ignore[no-untyped-def]
    index = parse_index((cache / "index.json").read_bytes())
    return parse_manifest((cache / "blobs" / "sha256" / index.manifests[0].digest.hex).read_bytes())


def _layout_diff_ids(cache: Path) -> list[Digest]:
    manifest = _layout_manifest(cache)
    config = json.loads((cache / "blobs" / "sha256" / manifest.config.digest.hex).read_bytes())
    return [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]


def _layout_blobs(cache: Path) -> list[str]:
    return sorted(path.name for path in (cache / "blobs" / "sha256").iterdir())


def _named_blobs(cache: Path) -> list[str]:
    index = parse_index((cache / "index.json").read_bytes())
    named = set()
    for entry in index.manifests:
        named.add(entry.digest.hex)
        manifest = parse_manifest((cache / "blobs" / "sha256" / entry.digest.hex).read_bytes())
        named.add(manifest.config.digest.hex)
        named.update(layer.digest.hex for layer in manifest.layers)
    return sorted(named)


def _replace_config(cache: Path, config_bytes: bytes) -> None:
    """Give the layout's cache manifest another config, and the index the new manifest."""
    blobs = cache / "blobs" / "sha256"
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    (blobs / config_digest).write_bytes(config_bytes)
    index = json.loads((cache / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].removeprefix("sha256:")).read_bytes())
    manifest["config"]["digest"] = f"sha256:{config_digest}"
    manifest["config"]["size"] = len(config_bytes)
    manifest_bytes = json.dumps(manifest).encode()
    manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
    (blobs / manifest_digest).write_bytes(manifest_bytes)
    index["manifests"][0]["digest"] = f"sha256:{manifest_digest}"
    index["manifests"][0]["size"] = len(manifest_bytes)
    (cache / "index.json").write_text(json.dumps(index))


def test_metadata_file_gives_the_pushed_manifest_digest_with_or_without_push(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    project = make_project(tmp_path / "app", base_ref)
    image_ref = f"{registry.host}/apps/{uuid.uuid4().hex[:12]}:1"
    root = tmp_path / "root"
    command = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "build", "-t", image_ref]
    local = subprocess.run(
        [*command, "--metadata-file", str(tmp_path / "local.json"), str(project)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert local.returncode == 0, local.stderr
    pushed = subprocess.run(
        [*command, "--push", "--metadata-file", str(tmp_path / "pushed.json"), str(project)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert pushed.returncode == 0, pushed.stderr
    without, with_push = (json.loads((tmp_path / name).read_text()) for name in ("local.json", "pushed.json"))
    assert without == with_push
    repository, tag = image_ref.split("/", 1)[1].rsplit(":", 1)
    from buildkit_py.registry.client import RegistryClient
    from buildkit_py.registry.pull import fetch_manifest

    with RegistryClient(registry.host) as client:
        _, _, digest = fetch_manifest(client, repository, tag)
    assert with_push["containerimage.digest"] == str(digest)
    assert with_push["image.name"] == image_ref
