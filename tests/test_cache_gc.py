"""Cache housekeeping on real builds in a fresh store: du numbers, prune's rules, and what a rebuild runs afterwards."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, base_context, pybuild_tree

from buildkit_py.builder import BuildResult, build
from buildkit_py.cli.cmd_cache import parse_duration, parse_size
from buildkit_py.cli.main import main
from buildkit_py.digest import Digest
from buildkit_py.errors import BuildError
from buildkit_py.image.compressed import compressed_layer
from buildkit_py.image.docker_archive import save_docker_archive
from buildkit_py.image.stored import image_config
from buildkit_py.store import Store
from buildkit_py.store.gc import cache_totals, cache_usage, layer_disk_sizes, prune_cache, system_df


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "root")
    build(base_context(tmp_path), tags=[BASE_IMAGE], store=store)
    return store


def project(folder: Path, name: str, blob_bytes: int) -> Path:
    """A helper stage writes `blob_bytes` of noise that the final image never gets: that layer is cache only."""
    folder.mkdir()
    (folder / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE} AS helper\n"
        f"RUN head -c {blob_bytes} /dev/urandom > /blob && echo {name} > /small\n"
        f"FROM {BASE_IMAGE}\n"
        "COPY app.txt /app.txt\n"
        f"RUN echo {name} > /name\n"
        "COPY --from=helper /small /small\n"
    )
    (folder / "app.txt").write_text(f"{name}\n")
    return folder


def executed(result: BuildResult) -> list[str]:
    return sorted(result.plan.graph.meta(d).name.split("] ", 1)[1] for d in result.stats.executed)


def helper_key(result: BuildResult) -> Digest:
    graph = result.plan.graph
    (digest,) = [d for d in result.keys if graph.meta(d).name.startswith("[helper 2/2] RUN")]
    return result.keys[digest]


def own_layer(store: Store, result: BuildResult, key: Digest) -> Digest:
    record = {r.key: r for r in store.cache.records()}[key]
    return record.chain[-1]


def image_still_whole(store: Store, name: str) -> None:
    out = io.BytesIO()
    save_docker_archive(store, [name], out)
    assert out.tell() > 0
    tree = pybuild_tree(store, name)
    assert "/app.txt" in tree and "/small" in tree and "/bin/busybox" in tree


def test_du_counts_each_records_own_layers(store: Store, tmp_path: Path) -> None:
    result = build(project(tmp_path / "a", "a", 100_000), tags=["app:a"], store=store)
    usages = {usage.key: usage for usage in cache_usage(store)}
    helper = usages[helper_key(result)]
    blob_layer = own_layer(store, result, helper.key)
    disk = layer_disk_sizes(store)
    # On disk: the tar and the unpacked snapshot, each a little more than the 100 kB of noise.
    assert helper.size == helper.private_size == disk[blob_layer] > 200_000
    assert helper.layers == (blob_layer,)
    assert not helper.in_use_by_image
    final_keys = {result.keys[d] for d in result.stats.executed} - {helper.key}
    assert len(final_keys) == 3
    for key in final_keys:
        # Behind the tagged image: du shows what the step made, but its layers are the image's, so none of it is
        # the cache's alone.
        usage = usages[key]
        assert usage.in_use_by_image and usage.size == sum(disk[d] for d in usage.layers) > 0
        assert usage.private_size == 0 and usage.shared_size > 0
    totals = cache_totals(store)
    assert totals.private == helper.size == sum(usage.private_size for usage in usages.values())
    image_layers = set(image_config(store, result.image_id).diff_ids)
    assert totals.shared == sum(disk[d] for d in image_layers)
    df = system_df(store)
    assert (df.images.total, df.images.active) == (2, 2)
    assert df.images.size == sum(disk[d] for d in image_layers)
    assert df.images.reclaimable == 0
    assert (df.build_cache.total, df.build_cache.size, df.build_cache.reclaimable) == (
        len(usages),
        helper.size,
        helper.size,
    )


def test_prune_keeps_records_behind_tagged_images(store: Store, tmp_path: Path) -> None:
    tagged = build(project(tmp_path / "a", "a", 50_000), tags=["app:a"], store=store)
    untagged_project = project(tmp_path / "b", "b", 60_000)
    untagged = build(untagged_project, store=store)
    blob = own_layer(store, tagged, helper_key(tagged))
    disk = layer_disk_sizes(store)
    expected = disk[blob] + disk[own_layer(store, untagged, helper_key(untagged))]

    report = prune_cache(store)
    # Both helpers and the untagged build's three final-stage records go; the untagged image keeps its layers.
    assert report.records_removed == 5
    assert report.bytes_freed == expected
    assert not store.layers.has(blob)
    assert store.images.has(untagged.image_id)
    assert all(store.layers.has(d) for d in image_config(store, untagged.image_id).diff_ids)
    assert all(usage.in_use_by_image for usage in cache_usage(store))
    image_still_whole(store, "app:a")

    assert executed(build(tmp_path / "a", store=store)) == []
    again = build(untagged_project, store=store)
    assert executed(again) == [
        "COPY --from=helper /small /small",
        "COPY app.txt /app.txt",
        "RUN echo b > /name",
        "RUN head -c 60000 /dev/urandom > /blob && echo b > /small",
    ]
    # The step log survives a default prune: the miss is compared with earlier builds, not "never built".
    reasons = {again.plan.graph.meta(d).name.split("] ", 1)[1]: r for d, r in again.stats.reasons.items()}
    assert reasons["COPY app.txt /app.txt"] != "no earlier build of this step"


def test_prune_all_never_touches_layers_of_images(store: Store, tmp_path: Path) -> None:
    result = build(project(tmp_path / "a", "a", 50_000), tags=["app:a"], store=store)
    private = cache_totals(store).private
    # A compressed form of the cache-only layer (as a push would make) goes with its layer.
    compressed = compressed_layer(store, own_layer(store, result, helper_key(result)), "gzip")
    report = prune_cache(store, all=True)
    assert report.bytes_freed == private + compressed.size
    assert private > 50_000 and not store.blobs.has(compressed.digest)
    assert store.cache.records() == []
    for image in (result.image_id, store.resolve(BASE_IMAGE)):
        assert all(store.layers.has(d) for d in image_config(store, image).diff_ids)
    image_still_whole(store, "app:a")
    assert cache_totals(store).total == 0
    again = build(tmp_path / "a", store=store)
    assert len(again.stats.executed) == 4
    # --all forgets the step log too: the steps are new again.
    reasons = {again.plan.graph.meta(d).name.split("] ", 1)[1]: r for d, r in again.stats.reasons.items()}
    assert reasons["COPY app.txt /app.txt"] == "no earlier build of this step"


def test_keep_storage_removes_least_recently_used_first(store: Store, tmp_path: Path) -> None:
    old = build(project(tmp_path / "old", "old", 100_000), tags=["app:old"], store=store)
    new = build(project(tmp_path / "new", "new", 200_000), tags=["app:new"], store=store)
    disk = layer_disk_sizes(store)
    old_size = disk[own_layer(store, old, helper_key(old))]
    new_size = disk[own_layer(store, new, helper_key(new))]
    assert cache_totals(store).private == old_size + new_size

    assert prune_cache(store, keep_storage=old_size + new_size).records_removed == 0
    report = prune_cache(store, keep_storage=new_size + 1000)
    assert (report.records_removed, report.bytes_freed) == (1, old_size)
    keys = {record.key for record in store.cache.records()}
    assert helper_key(old) not in keys and helper_key(new) in keys

    report = prune_cache(store, keep_storage=0)
    assert report.bytes_freed == new_size and cache_totals(store).private == 0
    assert executed(build(tmp_path / "new", target="helper", store=store)) == [
        "RUN head -c 200000 /dev/urandom > /blob && echo new > /small"
    ]
    assert executed(build(tmp_path / "old", store=store)) == []


def test_until_spares_records_used_since(store: Store, tmp_path: Path) -> None:
    old = build(project(tmp_path / "old", "old", 10_000), store=store)
    middle = time.time()
    new = build(project(tmp_path / "new", "new", 10_000), store=store)
    report = prune_cache(store, all=True, until_seconds=time.time() - middle)
    keys = {record.key for record in store.cache.records()}
    assert not keys & {old.keys[d] for d in old.stats.executed}
    assert {new.keys[d] for d in new.stats.executed} <= keys
    assert report.records_removed == 4
    # The base's records are kept: builds on top of the base image count as their use.
    assert all(usage.last_used >= middle for usage in cache_usage(store))
    assert executed(build(tmp_path / "new", store=store)) == []
    assert len(build(tmp_path / "old", store=store).stats.executed) == 4


def test_sizes_and_durations_parse_like_docker() -> None:
    assert parse_size("10GB") == 10 * 1024**3
    assert parse_size("512mb") == 512 * 1024**2
    assert parse_size("1.5g") == int(1.5 * 1024**3)
    assert parse_size("2048") == 2048
    assert parse_size("64KiB") == 64 * 1024
    assert parse_duration("24h") == 86400
    assert parse_duration("90m") == 5400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5h") == 5400
    assert parse_duration("300ms") == pytest.approx(0.3)
    for bad in ("10XB", "", "-1g"):
        with pytest.raises(BuildError):
            parse_size(bad)
    for bad in ("24", "h", "1d", ""):
        with pytest.raises(BuildError):
            parse_duration(bad)


def test_cli_du_prune_and_df(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build(project(tmp_path / "a", "a", 30_000), tags=["app:a"], store=store)
    root = str(store.root)
    assert main(["--root", root, "cache", "du"]) == 0
    out = capsys.readouterr().out
    assert "[helper 2/2] RUN head -c 30000" in out and "Reclaimable:" in out and "Total:" in out
    assert main(["--root", root, "system", "df"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert out.splitlines()[2].startswith("Build Cache")
    assert main(["--root", root, "system", "df", "-v"]) == 0
    assert re.search(r"^app +a +[0-9a-f]{12} ", capsys.readouterr().out, re.MULTILINE)
    assert main(["--root", root, "cache", "prune", "-f", "--filter", "until=1h"]) == 0
    assert capsys.readouterr().out.strip() == "Total reclaimed space: 0B"
    assert main(["--root", root, "cache", "prune", "-a", "-f", "--keep-storage", "1GB"]) == 0
    assert capsys.readouterr().out.strip() == "Total reclaimed space: 0B"
    assert main(["--root", root, "cache", "prune", "--all", "--force"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Deleted build cache objects:")
    assert re.search(
        r"^Removed 6 cache records \(their steps run again on the next build\) and 1 layer ", out, re.MULTILINE
    )
    assert re.search(r"^Total reclaimed space: [1-9][0-9.]*kB$", out, re.MULTILINE)
    assert main(["--root", root, "cache", "prune", "-f", "--filter", "label=x"]) == 1
    image_still_whole(store, "app:a")
