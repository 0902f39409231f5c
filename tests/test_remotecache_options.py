"""`--cache-to` and `--cache-from` options, each shown by what a fresh runner does with the cache: `mode=min` against
`mode=max`, several `--cache-from` that each give part of the records, `compression=uncompressed`, a registry that
needs credentials, and an export killed half-way through. Every runner is an empty `--root`; the base image comes
from a real docker-registry on 127.0.0.1, as a CI runner pulls it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_fixtures import (
    RegistryServer,
    htpasswd_file,
    isolate_registry_env,
    push_test_base,
    run_holding_proxy,
    run_registry,
)
from test_remotecache import executed

from buildkit_py.builder import BuildResult, build
from buildkit_py.image.manifest import parse_index, parse_manifest
from buildkit_py.remotecache.metadata import CACHE_FIELD
from buildkit_py.store import Store

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root for namespaces and overlayfs")

TWO_STAGES = """\
FROM {base} AS builder
RUN echo built > /artifact

FROM {base}
COPY --from=builder /artifact /app/artifact
RUN cat /app/artifact > /app/copy
"""
BUILDER_RUN = "RUN echo built > /artifact"
FINAL_STEPS = {"COPY --from=builder /artifact /app/artifact", "RUN cat /app/artifact > /app/copy"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with run_registry(tmp_path_factory.mktemp("options-registry"), None) as server:
        yield server


@pytest.fixture(scope="module")
def base_ref(registry: RegistryServer, base_store: Store) -> str:
    return push_test_base(registry, base_store)


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_registry_env(monkeypatch, tmp_path)


def two_stage_project(folder: Path, base: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(TWO_STAGES.format(base=base))
    return folder


def local_build(project: Path, root: Path, *caches: Path, **fields: Any) -> BuildResult:
    """A build on a fresh runner (`root` must not exist yet) that imports the local caches given."""
    assert not root.exists()
    return build(project, store=Store(root), cache_from=[f"type=local,src={cache}" for cache in caches], **fields)


def layout_manifest(cache: Path):  # type: ignore[no-untyped-def]
    index = parse_index((cache / "index.json").read_bytes())
    return parse_manifest((cache / "blobs" / "sha256" / index.manifests[0].digest.hex).read_bytes())


def layout_records(cache: Path) -> set[str]:
    config = json.loads((cache / "blobs" / "sha256" / layout_manifest(cache).config.digest.hex).read_bytes())
    return set(config[CACHE_FIELD]["records"])


# -- mode ------------------------------------------------------------------------------------------------------------


def test_mode_min_leaves_out_the_other_stages_and_mode_max_keeps_them(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    project = two_stage_project(tmp_path / "app", base_ref)
    minimal, maximal = tmp_path / "cache-min", tmp_path / "cache-max"
    first = build(
        project,
        store=Store(tmp_path / "runner-a"),
        cache_to=[f"type=local,dest={minimal},mode=min", f"type=local,dest={maximal},mode=max"],
    )
    assert executed(first) == {BUILDER_RUN, *FINAL_STEPS}
    assert [report.error for report in first.cache_exports] == ["", ""]
    assert layout_records(minimal) < layout_records(maximal)  # max has the builder's RUN on top of min's

    # The builder stage, built from each cache on a fresh runner: mode=min has no record of its RUN.
    assert executed(local_build(project, tmp_path / "min-builder", minimal, target="builder")) == {BUILDER_RUN}
    assert executed(local_build(project, tmp_path / "max-builder", maximal, target="builder")) == set()

    # The final image comes whole from either: mode=min holds every step of the image.
    for name, cache in (("min", minimal), ("max", maximal)):
        final = local_build(project, tmp_path / f"{name}-final", cache)
        assert executed(final) == set(), name
        assert final.image_id == first.image_id


# -- several sources -------------------------------------------------------------------------------------------------


def test_several_cache_from_each_give_their_records(tmp_path: Path, registry: RegistryServer, base_ref: str) -> None:
    """Stage `builder`'s records are only in one cache, the final stage's only in the other: a fresh runner with
    both runs nothing, and with either alone it runs what the other one held."""
    project = two_stage_project(tmp_path / "app", base_ref)
    builder_cache, final_cache = tmp_path / "cache-builder", tmp_path / "cache-final"
    build(project, store=Store(tmp_path / "runner-a"), target="builder", cache_to=[f"type=local,dest={builder_cache}"])
    full = build(project, store=Store(tmp_path / "runner-b"), cache_to=[f"type=local,dest={final_cache},mode=min"])
    assert not layout_records(builder_cache) & layout_records(final_cache)

    both = local_build(project, tmp_path / "runner-both", builder_cache, final_cache)
    assert executed(both) == set()
    assert both.image_id == full.image_id
    assert executed(local_build(project, tmp_path / "runner-builder", builder_cache, target="builder")) == set()
    reversed_order = local_build(project, tmp_path / "runner-reversed", final_cache, builder_cache)
    assert executed(reversed_order) == set()
    assert executed(local_build(project, tmp_path / "runner-final-only", final_cache, target="builder")) == {
        BUILDER_RUN
    }
    assert executed(local_build(project, tmp_path / "runner-builder-only", builder_cache)) == FINAL_STEPS


# -- compression -----------------------------------------------------------------------------------------------------

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def test_an_uncompressed_export_holds_plain_tars_and_imports(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    project = two_stage_project(tmp_path / "app", base_ref)
    cache = tmp_path / "cache"
    first = build(
        project,
        store=Store(tmp_path / "runner-a"),
        cache_to=[f"type=local,dest={cache},mode=max,compression=uncompressed"],
    )
    assert first.cache_exports[0].error == ""
    manifest = layout_manifest(cache)
    assert manifest.layers and {layer.media_type for layer in manifest.layers} == {OCI_LAYER_TAR}
    config = json.loads((cache / "blobs" / "sha256" / manifest.config.digest.hex).read_bytes())
    diff_ids = config["rootfs"]["diff_ids"]
    for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
        data = (cache / "blobs" / "sha256" / layer.digest.hex).read_bytes()
        assert len(data) == layer.size
        assert not data.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd"))  # neither gzip nor zstd
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == str(layer.digest) == diff_id  # the blob is the tar
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            assert archive.getmembers()
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress((cache / "blobs" / "sha256" / manifest.layers[0].digest.hex).read_bytes())

    second = local_build(project, tmp_path / "runner-b", cache)
    assert executed(second) == set()
    assert second.image_id == first.image_id
    builder = local_build(project, tmp_path / "runner-c", cache, target="builder")
    assert executed(builder) == set()


# -- a registry with credentials -------------------------------------------------------------------------------------

USERS = {"alice": "wonderland"}


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    work = tmp_path_factory.mktemp("auth-registry")
    passwords = htpasswd_file(work / "htpasswd", USERS)
    with run_registry(work, {"htpasswd": {"realm": "cache-realm", "path": str(passwords)}}) as server:
        yield server


def pybuild(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


def test_export_to_a_registry_that_needs_credentials(
    tmp_path: Path, registry: RegistryServer, auth_registry: RegistryServer, base_ref: str
) -> None:
    """Without credentials the export fails with a message that says so (the image is still built); after
    `pybuild login` the same export succeeds, and a fresh runner, logged in too, imports it and runs nothing."""
    project = two_stage_project(tmp_path / "app", base_ref)
    cache_ref = f"{auth_registry.host}/cache/{uuid.uuid4().hex[:12]}:main"
    root = tmp_path / "runner-a"
    refused = pybuild(root, "build", "-t", "app:refused", "--cache-to", f"type=registry,ref={cache_ref}", str(project))
    assert refused.returncode == 1
    assert f"exporting cache to registry:{cache_ref} failed" in refused.stderr
    assert f"authentication required (no credentials for {auth_registry.host}: run `pybuild login" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "Successfully tagged app:refused" in refused.stdout

    wrong = pybuild(root, "login", "-u", "alice", "--password-stdin", auth_registry.host, stdin="wrong\n")
    assert wrong.returncode == 1
    logged_in = pybuild(root, "login", "-u", "alice", "--password-stdin", auth_registry.host, stdin="wonderland\n")
    assert logged_in.returncode == 0, logged_in.stderr

    first = build(project, store=Store(root), cache_to=[f"type=registry,ref={cache_ref},mode=max"])
    assert first.cache_exports[0].error == ""
    assert first.cache_exports[0].records >= 3

    second = build(project, store=Store(tmp_path / "runner-b"), cache_from=[cache_ref])
    assert executed(second) == set()
    assert second.image_id == first.image_id


# -- a killed export -------------------------------------------------------------------------------------------------

WITH_LATE_FILE = """\
FROM {base} AS builder
RUN head -c 1048576 /dev/urandom > /artifact

FROM {base}
COPY --from=builder /artifact /app/artifact
COPY late.txt /app/late.txt
RUN cat /app/artifact /app/late.txt > /app/copy
"""


def test_a_killed_export_leaves_the_previous_cache_readable(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    """Runner A exports mode=min to a local folder and mode=max to a registry. Runner B builds a changed project with
    A's registry cache and exports mode=max to the folder: its export carries the builder's layer (which the folder
    lacks) forward from the registry, and a proxy stops that download half-way, so B is stopped in the middle of its
    export, deterministically, and SIGKILLed once half the blob is in the folder. A fresh runner then imports the folder and gets A's records; the next
    export to the folder succeeds and leaves no file of the killed one behind."""
    project = tmp_path / "app"
    project.mkdir()
    (project / "Dockerfile").write_text(WITH_LATE_FILE.format(base=base_ref))
    (project / "late.txt").write_text("first\n")
    cache = tmp_path / "ci-cache"
    cache_ref = f"{registry.host}/cache/{uuid.uuid4().hex[:12]}:main"
    first = build(
        project,
        store=Store(tmp_path / "runner-a"),
        cache_to=[f"type=local,dest={cache},mode=min", f"type=registry,ref={cache_ref},mode=max"],
    )
    assert [report.error for report in first.cache_exports] == ["", ""]
    index_before = (cache / "index.json").read_bytes()
    blobs_before = {path.name for path in (cache / "blobs" / "sha256").iterdir()}
    in_image = {str(diff_id) for diff_id in first.config.diff_ids}
    builder_only = frozenset(
        digest
        for digest, diff_id in zip(*_registry_layers(registry, cache_ref), strict=True)
        if diff_id not in in_image
    )
    assert builder_only and not {digest.removeprefix("sha256:") for digest in builder_only} & blobs_before

    (project / "late.txt").write_text("second\n")
    root_b = tmp_path / "runner-b"
    with run_holding_proxy(registry.host, builder_only) as proxy:
        proxied_ref = cache_ref.replace(registry.host, proxy.host)
        command = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root_b), "build", "-t", "app:killed"]
        command += ["--cache-from", f"type=registry,ref={proxied_ref}"]
        command += ["--cache-to", f"type=local,dest={cache},mode=max", str(project)]
        with open(tmp_path / "b.out", "wb") as out:
            exporter = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            while not proxy.held.wait(0.05):
                assert exporter.poll() is None, (tmp_path / "b.out").read_text(errors="replace")
            while not (written := _partial_bytes(cache)):  # the half sent reaches the folder
                assert exporter.poll() is None, (tmp_path / "b.out").read_text(errors="replace")
                time.sleep(0.01)
        finally:
            exporter.kill()
            exporter.wait()
    assert exporter.returncode == -signal.SIGKILL
    assert 0 < written < 1048576  # killed with part of the builder's layer written
    assert (cache / "index.json").read_bytes() == index_before

    (project / "late.txt").write_text("first\n")
    again = local_build(project, tmp_path / "runner-d", cache)
    assert executed(again) == set()
    assert again.image_id == first.image_id

    (project / "late.txt").write_text("third\n")
    after = build(project, store=Store(tmp_path / "runner-d"), cache_to=[f"type=local,dest={cache},mode=max"])
    assert after.cache_exports[0].error == ""
    left = {path.name for path in (cache / "blobs" / "sha256").iterdir()}
    assert not [name for name in left if name.startswith(".")], left - blobs_before


def test_an_export_removes_only_the_temp_files_of_exports_that_are_gone(
    tmp_path: Path, registry: RegistryServer, base_ref: str
) -> None:
    project = two_stage_project(tmp_path / "app", base_ref)
    cache = tmp_path / "cache"
    blobs = cache / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = int(finished.stdout)
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as live:
        temp_files = {
            "dead-blob": blobs / f".{'a' * 64}.{dead}.partial",
            "dead-index": cache / f".index.json.{dead}.partial",
            "live-blob": blobs / f".{'b' * 64}.{live.pid}.partial",
            "not-ours": blobs / ".keep-me",
        }
        for path in temp_files.values():
            path.write_bytes(b"half")
        result = build(project, store=Store(tmp_path / "root"), cache_to=[f"type=local,dest={cache}"])
        assert result.cache_exports[0].error == ""
        assert {name for name, path in temp_files.items() if path.exists()} == {"live-blob", "not-ours"}
        assert live.stdin is not None
        live.stdin.close()


def _registry_layers(registry: RegistryServer, ref: str) -> tuple[list[str], list[str]]:
    """The layer blob digests of a cache pushed to `registry`, and the diff ids its config lists for them."""
    from buildkit_py.registry.client import RegistryClient
    from buildkit_py.registry.pull import download_blob, fetch_manifest

    repository, tag = ref.removeprefix(f"{registry.host}/").rsplit(":", 1)
    with RegistryClient(registry.host) as client, tempfile.TemporaryDirectory() as work:
        body, media_type, _ = fetch_manifest(client, repository, tag)
        manifest = parse_manifest(body, media_type)
        download_blob(client, repository, manifest.config, Path(work) / "config.json")
        config = json.loads((Path(work) / "config.json").read_bytes())
    return [str(layer.digest) for layer in manifest.layers], list(config["rootfs"]["diff_ids"])


def _partial_bytes(cache: Path) -> int:
    """Bytes in the blob files an export is still writing (temp names beside the blobs)."""
    return sum(path.stat().st_size for path in (cache / "blobs" / "sha256").glob(".*.partial"))
