"""The cache metadata that travels: which layer chain each cache key gave, and the step log the miss explanations read.

It lives in an image config, under the top-level field `pybuild.cache` (as BuildKit's inline cache lives under
`moby.buildkit.cache.v0`): in the config of a cache manifest (`--cache-to type=local|registry`, whose layers are the
cache's layers) or of the built image itself (`type=inline`). Either way the config is a valid OCI image config whose
`rootfs.diff_ids` name the manifest's layers, so registries, `skopeo inspect` and `docker pull` take it as an image,
and a layer's blob is found by its diff_id. A record's chain may also name layers that are not in the manifest (those
of its base image): the importing store must have them already.

    {"version": 1,
     "records": {"blake3:<key>": {"chain": ["sha256:<diff_id>", ...], "created": <unix time>, "description": "RUN make"}},
     "steps": [{"key": ..., "inputs": [...], "kind": "exec", "instruction": "RUN make", "stage": "build",
                "definition": {...}, "files": "<base64 of zlib of JSON>", "created": ..., "number": 5, "duration": 1.2}],
     "cache_mounts": {"version": 1,
                      "mounts": [{"id": "pip", "layer": "sha256:<diff_id>", "uid": 0, "gid": 0, "mode": 493,
                                  "size": <bytes of its files>}]}}

`cache_mounts` (only with `--cache-to ...,cache-mounts=true`) describes the contents of `RUN --mount=type=cache`
folders: each id's folder is a tar layer of the manifest (mounttar.py: directories, files, symlinks and hard
links, nothing else), named here by its diff_id, with the owner and mode of the folder itself. It has a version of
its own: a pybuild that cannot read it still uses the records, and says it skipped the mounts.

Everything read here is hostile: every field is checked, the `files` of a step are decompressed with a limit and
parsed, and a version newer than this pybuild reads is refused with a message that says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..digest import Digest
from ..errors import CacheImportError, InvalidDigest
from ..image.config import HistoryEntry, ImageConfig
from ..image.manifest import Platform
from ..store.steplog import StepRow

__all__ = [
    "CACHE_FIELD",
    "MOUNTS_VERSION",
    "VERSION",
    "CacheDocument",
    "CachedMount",
    "CachedResult",
    "cache_config_bytes",
    "read_cache_config",
    "with_inline_cache",
]

CACHE_FIELD = "pybuild.cache"
VERSION = 1
MOUNTS_VERSION = 1
MAX_MOUNT_ID = 4096
_MAX_ID = 2**32 - 2
MAX_FILES_JSON = 64 << 20  # a step's per-file digests, decompressed
_EPOCH_TEXT = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class CachedResult:
    """What a cache key gave: its layer chain, when it was first built, and the step's name."""

    chain: tuple[Digest, ...]
    created: float
    description: str = ""


@dataclass(frozen=True)
class CachedMount:
    """The contents of a cache mount: the tar layer of its folder, and the folder's owner and mode."""

    id: str
    layer: Digest  # the diff_id of its tar
    uid: int = 0
    gid: int = 0
    mode: int = 0o755
    size: int = 0  # bytes of its regular files

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "layer": str(self.layer),
            "uid": self.uid,
            "gid": self.gid,
            "mode": self.mode,
            "size": self.size,
        }


@dataclass(frozen=True)
class CacheDocument:
    records: Mapping[Digest, CachedResult] = field(default_factory=dict)
    steps: tuple[StepRow, ...] = ()
    mounts: tuple[CachedMount, ...] = ()
    skipped_mounts: str = ""  # why cache mounts it holds cannot be read (a newer format), or ""

    def layers(self) -> list[Digest]:
        """Every layer a record names, in first-seen order."""
        return list(dict.fromkeys(diff_id for result in self.records.values() for diff_id in result.chain))

    def mount(self, cache_id: str) -> CachedMount | None:
        return next((mount for mount in self.mounts if mount.id == cache_id), None)

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "version": VERSION,
            "records": {
                str(key): {
                    "chain": [str(diff_id) for diff_id in result.chain],
                    "created": result.created,
                    "description": result.description,
                }
                for key, result in sorted(self.records.items(), key=lambda item: str(item[0]))
            },
            "steps": [_step_json(row) for row in sorted(self.steps, key=lambda row: row.key)],
        }
        if self.mounts:
            mounts = [mount.to_json() for mount in sorted(self.mounts, key=lambda mount: mount.id)]
            value["cache_mounts"] = {"version": MOUNTS_VERSION, "mounts": mounts}
        return value

    @classmethod
    def from_json(cls, value: Any, where: str) -> CacheDocument:
        if not isinstance(value, dict):
            raise CacheImportError(f"{where}: the cache metadata is not a JSON object")
        version = value.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise CacheImportError(f"{where}: the cache metadata has no version number")
        if version > VERSION:
            raise CacheImportError(
                f"{where}: the cache metadata is version {version}, from a newer pybuild (this one reads {VERSION})"
            )
        if version < 1:
            raise CacheImportError(f"{where}: unknown cache metadata version {version}")
        records_value = value.get("records")
        steps_value = value.get("steps", [])
        if not isinstance(records_value, dict) or not isinstance(steps_value, list):
            raise CacheImportError(f"{where}: the cache metadata needs a records object and a steps list")
        records = {_digest(key, "blake3", where): _result(item, where) for key, item in records_value.items()}
        steps = tuple(_step(item, where) for item in steps_value)
        mounts, skipped = _mounts(value.get("cache_mounts"), where)
        return cls(records, steps, mounts, skipped)


def _digest(text: Any, algorithm: str, where: str) -> Digest:
    if not isinstance(text, str):
        raise CacheImportError(f"{where}: {text!r} is not a digest")
    try:
        digest = Digest.parse(text)
    except InvalidDigest as error:
        raise CacheImportError(f"{where}: {error}") from None
    if digest.algorithm != algorithm:
        raise CacheImportError(f"{where}: {text} is not a {algorithm} digest")
    return digest


def _number(value: Any, name: str, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise CacheImportError(f"{where}: {name} {value!r} is not a time")
    return float(value)


def _text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise CacheImportError(f"{where}: {name} {value!r} is not a string")
    return value


def _result(value: Any, where: str) -> CachedResult:
    if not isinstance(value, dict) or not isinstance(value.get("chain"), list):
        raise CacheImportError(f"{where}: a cache record without a layer chain: {str(value)[:200]}")
    chain = tuple(_digest(item, "sha256", where) for item in value["chain"])
    return CachedResult(
        chain=chain,
        created=_number(value.get("created", 0), "created", where),
        description=_text(value.get("description", ""), "description", where),
    )


def _mounts(value: Any, where: str) -> tuple[tuple[CachedMount, ...], str]:
    """The cache mounts of the metadata, and why they were skipped when their format is newer than ours."""
    if value is None:
        return (), ""
    if not isinstance(value, dict) or not isinstance(value.get("mounts"), list):
        raise CacheImportError(f"{where}: cache_mounts is not an object with a mounts list")
    version = value.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CacheImportError(f"{where}: cache_mounts has no valid version number")
    if version > MOUNTS_VERSION:
        return (), (
            f"its cache mounts are format {version}, from a newer pybuild (this one reads {MOUNTS_VERSION}): "
            "they are not restored"
        )
    mounts: dict[str, CachedMount] = {}
    for item in value["mounts"]:
        mount = _mount(item, where)
        mounts.setdefault(mount.id, mount)
    return tuple(mounts.values()), ""


def _integer(value: Any, name: str, maximum: int, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise CacheImportError(f"{where}: cache mount {name} {value!r} is not a number from 0 to {maximum}")
    return value


def _mount(value: Any, where: str) -> CachedMount:
    if not isinstance(value, dict):
        raise CacheImportError(f"{where}: a cache mount entry is not an object")
    cache_id = _text(value.get("id"), "cache mount id", where)
    if not cache_id or len(cache_id) > MAX_MOUNT_ID or "\0" in cache_id:
        raise CacheImportError(f"{where}: cache mount id {cache_id[:100]!r} is empty, too long or holds a NUL")
    return CachedMount(
        id=cache_id,
        layer=_digest(value.get("layer"), "sha256", where),
        uid=_integer(value.get("uid", 0), "uid", _MAX_ID, where),
        gid=_integer(value.get("gid", 0), "gid", _MAX_ID, where),
        mode=_integer(value.get("mode", 0o755), "mode", 0o7777, where),
        size=_integer(value.get("size", 0), "size", 2**63 - 1, where),
    )


def _step_json(row: StepRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "inputs": json.loads(row.input_keys),
        "kind": row.kind,
        "instruction": row.instruction,
        "stage": row.stage,
        "definition": json.loads(row.definition),
        "files": base64.b64encode(row.files).decode(),
        "created": row.created,
        "number": row.number,
        "duration": row.duration,
    }


def _step(value: Any, where: str) -> StepRow:
    if not isinstance(value, dict):
        raise CacheImportError(f"{where}: a step log entry is not an object")
    inputs = value.get("inputs")
    if not isinstance(inputs, list):
        raise CacheImportError(f"{where}: a step log entry without its inputs")
    definition = value.get("definition")
    if not isinstance(definition, dict):
        raise CacheImportError(f"{where}: a step log entry without its definition")
    number = value.get("number", 0)
    if not isinstance(number, int) or isinstance(number, bool):
        raise CacheImportError(f"{where}: step number {number!r} is not a number")
    return StepRow(
        key=str(_digest(value.get("key"), "blake3", where)),
        input_keys=json.dumps([str(_digest(item, "blake3", where)) for item in inputs]),
        kind=_text(value.get("kind"), "kind", where),
        instruction=_text(value.get("instruction"), "instruction", where),
        stage=_text(value.get("stage", ""), "stage", where),
        definition=json.dumps(definition, sort_keys=True),
        files=_files(value.get("files", ""), where),
        created=_number(value.get("created", 0), "created", where),
        number=number,
        project="",
        duration=_number(value.get("duration", 0), "duration", where),
    )


def _files(value: Any, where: str) -> bytes:
    """A step's per-file digests, checked to be a list of {path: digest} and compressed again by us."""
    text = _text(value, "files", where)
    try:
        compressed = base64.b64decode(text, validate=True)
        inflater = zlib.decompressobj()
        data = inflater.decompress(compressed, MAX_FILES_JSON)
        if inflater.unconsumed_tail:
            raise CacheImportError(f"{where}: a step's file list is larger than {MAX_FILES_JSON} bytes")
        files = json.loads(data) if data else []
    except (binascii.Error, zlib.error, ValueError) as error:
        raise CacheImportError(f"{where}: a step's file list is corrupt: {error}") from None
    if not isinstance(files, list) or not all(
        isinstance(item, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in item.items())
        for item in files
    ):
        raise CacheImportError(f"{where}: a step's file list is not a list of path -> digest maps")
    return zlib.compress(json.dumps(files, sort_keys=True).encode())


def cache_config_bytes(document: CacheDocument, diff_ids: list[Digest], platform: Platform) -> bytes:
    """The config of a cache manifest: a valid image config over the cache's layers, holding the metadata."""
    config = ImageConfig(
        diff_ids=tuple(diff_ids),
        history=tuple(HistoryEntry(created=_EPOCH_TEXT, created_by="pybuild cache layer") for _ in diff_ids),
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        created=_EPOCH_TEXT,
    )
    return with_inline_cache(config.to_bytes(), document)


def with_inline_cache(config_bytes: bytes, document: CacheDocument) -> bytes:
    """An image config with the cache metadata added (the rest byte for byte as `ImageConfig.to_bytes` writes it)."""
    value = json.loads(config_bytes)
    value[CACHE_FIELD] = document.to_json()
    return json.dumps(value, separators=(",", ":")).encode()


def read_cache_config(config_bytes: bytes, where: str) -> tuple[CacheDocument | None, tuple[Digest, ...]]:
    """The cache metadata of an image config (None when it has none) and the config's diff_ids."""
    try:
        value = json.loads(config_bytes)
    except (ValueError, UnicodeDecodeError) as error:
        raise CacheImportError(f"{where}: the config is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise CacheImportError(f"{where}: the config is not a JSON object")
    rootfs = value.get("rootfs")
    diff_ids_value = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids_value, list):
        raise CacheImportError(f"{where}: the config names no layers (rootfs.diff_ids)")
    diff_ids = tuple(_digest(item, "sha256", where) for item in diff_ids_value)
    if CACHE_FIELD not in value:
        return None, diff_ids
    return CacheDocument.from_json(value[CACHE_FIELD], where), diff_ids
