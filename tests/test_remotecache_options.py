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
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_fixtures import RegistryServer, htpasswd_file, run_registry
from test_remotecache import executed

from buildkit_py.builder import BuildResult, build
from buildkit_py.image.manifest import parse_index, parse_manifest
from buildkit_py.registry.push import push_image
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
    ref = f"{registry.host}/base/busybox:1"
    base_store.tags.set(ref, base_store.resolve("pybuild-test/busybox:latest"))
    push_image(base_store, ref)
    return ref


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


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
