"""`--cache-to` and `--cache-from`, read as BuildKit reads them.

    --cache-to   type=local,dest=DIR[,tag=T][,mode=min|max][,compression=gzip|zstd|uncompressed][,ignore-error=true]
                 [,cache-mounts=true]
    --cache-to   type=registry,ref=REPO:TAG[,mode=...][,compression=...][,ignore-error=true][,cache-mounts=true]
    --cache-to   type=inline
    --cache-from type=local,src=DIR[,tag=T]
    --cache-from type=registry,ref=REPO:TAG      (a cache, or an image carrying inline cache)
    --cache-from REPO:TAG                        (the same, as BuildKit takes a bare reference)

`mode=min` (BuildKit's default) exports the steps of the final image, `mode=max` every step of every stage the build
needed. `cache-mounts=true` (pybuild's own; local and registry only) asks for the contents of the build's
`RUN --mount=type=cache` folders too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CacheSpecError
from ..reference import InvalidReference, parse_reference

__all__ = ["CacheExport", "CacheImport", "parse_cache_from", "parse_cache_to"]

DEFAULT_TAG = "latest"
_MODES = ("min", "max")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass(frozen=True)
class CacheExport:
    """Where a build's cache goes, and what of it."""

    type: str  # "local", "registry" or "inline"
    dest: str = ""  # the folder (local) or the reference (registry)
    tag: str = DEFAULT_TAG  # the layout's index entry (local)
    mode: str = "min"
    compression: str = "gzip"
    ignore_error: bool = False
    cache_mounts: bool = False

    def __str__(self) -> str:
        return "inline" if self.type == "inline" else f"{self.type}:{self.dest}"


@dataclass(frozen=True)
class CacheImport:
    """Where a build may find cache records made elsewhere."""

    type: str  # "local" or "registry"
    src: str  # the folder (local) or the reference (registry)
    tag: str = DEFAULT_TAG

    def __str__(self) -> str:
        return f"{self.type}:{self.src}"


def _fields(spec: str, flag: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, equals, value = part.partition("=")
        key = key.strip().lower()
        if not equals or not key:
            raise CacheSpecError(f"invalid {flag} field {part!r} in {spec!r} (expected key=value)")
        if key in fields:
            raise CacheSpecError(f"{flag} {spec!r} gives {key}= twice")
        fields[key] = value.strip()
    return fields


def _flag(fields: dict[str, str], name: str, spec: str) -> bool:
    value = fields.pop(name, "false").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise CacheSpecError(f"{name}= must be true or false, not {value!r} (in {spec!r})")


def _no_more(fields: dict[str, str], flag: str, spec: str) -> None:
    if fields:
        raise CacheSpecError(f"{flag} {spec!r}: unknown field {min(fields)}= for type={fields.get('type', '')}")


def parse_cache_to(spec: str) -> CacheExport:
    fields = _fields(spec, "--cache-to")
    kind = fields.pop("type", "")
    if kind not in ("local", "registry", "inline"):
        raise CacheSpecError(f"--cache-to type must be local, registry or inline, not {kind!r} (in {spec!r})")
    mode = fields.pop("mode", "min").lower()
    if mode not in _MODES:
        raise CacheSpecError(f"--cache-to mode must be min or max, not {mode!r}")
    # lazy: the compressors (zstandard, lzma, bz2) only once --cache-to is given
    from ..layer.compression import COMPRESSIONS

    compression = fields.pop("compression", "gzip").lower()
    if compression not in COMPRESSIONS:
        raise CacheSpecError(f"--cache-to compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}")
    ignore_error = _flag(fields, "ignore-error", spec)
    cache_mounts = _flag(fields, "cache-mounts", spec)
    tag = fields.pop("tag", DEFAULT_TAG) or DEFAULT_TAG
    fields.pop("oci-mediatypes", None)  # BuildKit's; our cache manifests are always OCI
    fields.pop("image-manifest", None)  # BuildKit's; ours always are image manifests
    dest = ""
    if kind == "local":
        dest = fields.pop("dest", "")
        if not dest:
            raise CacheSpecError(f"--cache-to {spec!r} needs dest=DIR")
    elif kind == "registry":
        dest = fields.pop("ref", "")
        if not dest:
            raise CacheSpecError(f"--cache-to {spec!r} needs ref=REPOSITORY:TAG")
        _check_reference(dest)
    elif mode == "max":
        raise CacheSpecError("--cache-to type=inline supports mode=min only: it holds the layers of the image")
    elif cache_mounts:
        raise CacheSpecError("--cache-to type=inline cannot hold cache mounts (use type=local or type=registry)")
    _no_more(fields, "--cache-to", spec)
    return CacheExport(kind, dest, tag, mode, compression, ignore_error, cache_mounts)


def parse_cache_from(spec: str) -> CacheImport:
    if "=" not in spec:
        _check_reference(spec)
        return CacheImport("registry", spec)
    fields = _fields(spec, "--cache-from")
    kind = fields.pop("type", "")
    tag = fields.pop("tag", DEFAULT_TAG) or DEFAULT_TAG
    if kind == "local":
        src = fields.pop("src", "")
        if not src:
            raise CacheSpecError(f"--cache-from {spec!r} needs src=DIR")
    elif kind == "registry":
        src = fields.pop("ref", "")
        if not src:
            raise CacheSpecError(f"--cache-from {spec!r} needs ref=REPOSITORY:TAG")
        _check_reference(src)
    else:
        raise CacheSpecError(f"--cache-from type must be local or registry, not {kind!r} (in {spec!r})")
    fields.pop("digest", None)  # BuildKit's pin for a local cache; the index entry is found by tag
    _no_more(fields, "--cache-from", spec)
    return CacheImport(kind, src, tag)


def _check_reference(text: str) -> None:
    try:
        parse_reference(text)
    except InvalidReference as error:
        raise CacheSpecError(f"invalid cache reference {text!r}: {error}") from None
