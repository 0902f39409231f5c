"""The flags and the metadata document of caches that travel: BuildKit's syntax, and hostile metadata refused with
the project's own error, never a traceback."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import socket
import stat
import zlib
from pathlib import Path
from typing import Any

import pytest

from buildkit_py.digest import digest_bytes
from buildkit_py.errors import CacheImportError, CacheSpecError
from buildkit_py.image.manifest import Platform
from buildkit_py.remotecache.metadata import (
    CACHE_FIELD,
    CachedMount,
    CacheDocument,
    CachedResult,
    cache_config_bytes,
    read_cache_config,
)
from buildkit_py.remotecache.mounttar import unpack_folder_tar, write_folder_tar
from buildkit_py.remotecache.spec import CacheExport, CacheImport, parse_cache_from, parse_cache_to
from buildkit_py.store.steplog import StepRow

KEY = digest_bytes(b"key")
LAYER = digest_bytes(b"layer", "sha256")


def test_cache_to_reads_buildkit_syntax() -> None:
    assert parse_cache_to("type=local,dest=/tmp/c,mode=max,compression=zstd") == CacheExport(
        "local", "/tmp/c", mode="max", compression="zstd"
    )
    assert parse_cache_to("type=registry,ref=localhost:5000/app:cache,ignore-error=true") == CacheExport(
        "registry", "localhost:5000/app:cache", ignore_error=True
    )
    assert parse_cache_to("type=inline") == CacheExport("inline")
    assert parse_cache_to("type=local,dest=d,cache-mounts=true").cache_mounts


def test_cache_from_reads_buildkit_syntax() -> None:
    assert parse_cache_from("localhost:5000/app:1") == CacheImport("registry", "localhost:5000/app:1")
    assert parse_cache_from("type=registry,ref=app:cache") == CacheImport("registry", "app:cache")
    assert parse_cache_from("type=local,src=/c,tag=ci") == CacheImport("local", "/c", "ci")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("type=s3,bucket=x", "type must be local, registry or inline"),
        ("type=local", "needs dest=DIR"),
        ("type=local,dest=d,mode=all", "mode must be min or max"),
        ("type=local,dest=d,compression=lz4", "compression must be one of"),
        ("type=inline,mode=max", "mode=min only"),
        ("type=inline,cache-mounts=true", "cannot hold cache mounts"),
        ("type=local,dest=d,ignore-error=maybe", "must be true or false"),
        ("type=local,dest=d,colour=blue", "unknown field colour="),
        ("type=registry,ref=UPPER", "invalid cache reference"),
        ("type=local,dest", "expected key=value"),
    ],
)
def test_bad_cache_to_is_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(CacheSpecError, match=message):
        parse_cache_to(spec)


def test_the_document_round_trips_through_a_config() -> None:
    files = base64.b64encode(zlib.compress(json.dumps([{"a.txt": "blake3:00"}]).encode())).decode()
    row = StepRow(str(KEY), json.dumps([str(KEY)]), "file", "COPY a.txt /", "", "{}", b"", 1.0, 2, "")
    document = CacheDocument({KEY: CachedResult((LAYER,), 12.5, "RUN x")}, (row,))
    config = cache_config_bytes(document, [LAYER], Platform())
    parsed, diff_ids = read_cache_config(config, "test")
    assert diff_ids == (LAYER,)
    assert parsed is not None and parsed.records == document.records
    assert parsed.steps[0].key == str(KEY) and parsed.steps[0].number == 2
    value = json.loads(config)
    value[CACHE_FIELD]["steps"][0]["files"] = files
    reparsed, _ = read_cache_config(json.dumps(value).encode(), "test")
    assert reparsed is not None and json.loads(zlib.decompress(reparsed.steps[0].files)) == [{"a.txt": "blake3:00"}]


def test_cache_mounts_round_trip_and_are_absent_when_there_are_none() -> None:
    mount = CachedMount("pip", LAYER, uid=1000, gid=1000, mode=0o700, size=12)
    document = CacheDocument({KEY: CachedResult((LAYER,), 1.0)}, (), (mount,))
    parsed, _ = read_cache_config(cache_config_bytes(document, [LAYER, LAYER], Platform()), "test")
    assert parsed is not None and parsed.mounts == (mount,) and parsed.mount("pip") == mount
    plain = json.loads(cache_config_bytes(CacheDocument({KEY: CachedResult((LAYER,), 1.0)}), [LAYER], Platform()))
    assert "cache_mounts" not in plain[CACHE_FIELD]  # a cache without mounts is what it was before them


def test_cache_mounts_of_a_newer_format_are_skipped_not_the_records() -> None:
    cache = {
        "version": 1,
        "records": {str(KEY): {"chain": [str(LAYER)]}},
        "cache_mounts": {"version": 7, "mounts": [{"anything": "new"}]},
    }
    parsed, _ = read_cache_config(_config(cache), "test")
    assert parsed is not None and set(parsed.records) == {KEY} and parsed.mounts == ()
    assert "format 7, from a newer pybuild" in parsed.skipped_mounts


def _mounts(*entries: Any) -> dict[str, Any]:
    return {"version": 1, "records": {}, "cache_mounts": {"version": 1, "mounts": list(entries)}}


def _mount(**fields: Any) -> dict[str, Any]:
    return {"id": "pip", "layer": str(LAYER), "uid": 0, "gid": 0, "mode": 0o755, "size": 0, **fields}


def _config(cache: Any) -> bytes:
    return json.dumps({"rootfs": {"type": "layers", "diff_ids": [str(LAYER)]}, CACHE_FIELD: cache}).encode()


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ({"version": 2, "records": {}}, "version 2, from a newer pybuild"),
        ({"records": {}}, "no version number"),
        ({"version": 1, "records": {"sha256:" + "0" * 64: {"chain": []}}}, "is not a blake3 digest"),
        ({"version": 1, "records": {str(KEY): {"chain": ["../etc"]}}}, "digest"),
        ({"version": 1, "records": {str(KEY): {"chain": [], "created": -1}}}, "is not a time"),
        (
            {
                "version": 1,
                "records": {},
                "steps": [
                    {
                        "key": str(KEY),
                        "inputs": [],
                        "definition": {},
                        "kind": "x",
                        "instruction": "RUN",
                        "files": base64.b64encode(zlib.compress(b"x" * (65 << 20))).decode(),
                    }
                ],
            },
            "larger than",
        ),
        (
            {
                "version": 1,
                "records": {},
                "steps": [
                    {"key": str(KEY), "inputs": [], "definition": {}, "kind": "x", "instruction": "RUN", "files": "!!"}
                ],
            },
            "file list is corrupt",
        ),
        ([], "not a JSON object"),
        ({"version": 1, "records": {}, "cache_mounts": []}, "cache_mounts is not an object"),
        ({"version": 1, "records": {}, "cache_mounts": {"mounts": []}}, "cache_mounts has no valid version"),
        (_mounts(_mount(uid=-1)), "uid -1 is not a number"),
        (_mounts(_mount(gid=2**32)), "gid 4294967296 is not a number"),
        (_mounts(_mount(mode=0o10000)), "mode 4096 is not a number"),
        (_mounts(_mount(id="")), "is empty, too long or holds a NUL"),
        (_mounts(_mount(id="a\0b")), "is empty, too long or holds a NUL"),
        (_mounts(_mount(layer="blake3:" + "0" * 64)), "is not a sha256 digest"),
        (_mounts("pip"), "a cache mount entry is not an object"),
    ],
)
def test_hostile_metadata_is_refused_by_name(cache: Any, message: str) -> None:
    with pytest.raises(CacheImportError, match=message):
        read_cache_config(_config(cache), "test")


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, -1, 0, 2**70, 1.5, float("nan")])
    if kind == 2:
        return rng.choice(["", "x", str(KEY), str(LAYER), "sha256:", "../../etc/passwd", "blake3:zz"])
    if kind in (3, 4):
        return rng.choice([[], {}, "chain", "version"])
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["version", "records", "steps", "chain", "created", "files", "inputs", "definition", str(KEY), "key"]
    keys += ["cache_mounts", "mounts", "id", "layer", "uid", "mode"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def test_any_json_gives_a_document_or_our_error() -> None:
    rng = random.Random(12)
    for _ in range(2000):
        value = _random_json(rng)
        for cache in (
            value,
            {"version": 1, "records": value},
            {"version": 1, "records": {}, "steps": value},
            {"version": 1, "records": {}, "cache_mounts": value},
            {"version": 1, "records": {}, "cache_mounts": {"version": 1, "mounts": [value]}},
        ):
            try:
                read_cache_config(_config(cache), "fuzz")
            except CacheImportError:
                pass


# -- a cache mount's folder as a tar -----------------------------------------------------------------------------


def test_a_cache_folder_packs_without_following_links_or_keeping_special_files(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    (folder / "wheels").mkdir(parents=True)
    (folder / "wheels" / "a.whl").write_bytes(b"wheel")
    os.link(folder / "wheels" / "a.whl", folder / "wheels" / "same.whl")
    os.symlink("/etc", folder / "etc")  # a step's symlink: kept as a link, never followed
    os.mkfifo(folder / "fifo")
    os.mknod(folder / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(folder / "socket"))
    first, again = io.BytesIO(), io.BytesIO()
    written = write_folder_tar(folder, first)
    assert write_folder_tar(folder, again).diff_id == written.diff_id  # an unchanged folder, the same bytes
    assert (written.entries, written.skipped, written.content_size) == (4, 3, 5)

    out = tmp_path / "out"
    out.mkdir()
    first.seek(0)
    assert unpack_folder_tar(first, out).diff_id == written.diff_id
    assert (out / "etc").is_symlink() and os.readlink(out / "etc") == "/etc"
    assert os.stat(out / "wheels" / "same.whl").st_nlink == 2
    assert sorted(os.listdir(out)) == ["etc", "wheels"]


def test_a_folder_swapped_for_a_symlink_is_refused_by_the_walk(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host file")
    folder = tmp_path / "cache"
    folder.mkdir()
    os.symlink(outside, folder / "dir")
    buffer = io.BytesIO()
    write_folder_tar(folder, buffer)
    assert b"host file" not in buffer.getvalue()
    with pytest.raises(OSError):  # the folder itself is opened without following a symlink
        write_folder_tar(folder / "dir", io.BytesIO())
