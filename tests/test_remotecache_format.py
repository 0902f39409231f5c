"""The flags and the metadata document of caches that travel: BuildKit's syntax, and hostile metadata refused with
the project's own error, never a traceback."""

from __future__ import annotations

import base64
import json
import random
import zlib
from typing import Any

import pytest

from buildkit_py.digest import digest_bytes
from buildkit_py.errors import CacheImportError, CacheSpecError
from buildkit_py.image.manifest import Platform
from buildkit_py.remotecache.metadata import (
    CACHE_FIELD,
    CacheDocument,
    CachedResult,
    cache_config_bytes,
    read_cache_config,
)
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
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def test_any_json_gives_a_document_or_our_error() -> None:
    rng = random.Random(12)
    for _ in range(2000):
        value = _random_json(rng)
        for cache in (value, {"version": 1, "records": value}, {"version": 1, "records": {}, "steps": value}):
            try:
                read_cache_config(_config(cache), "fuzz")
            except CacheImportError:
                pass
