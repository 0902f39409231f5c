"""OCI and Docker v2 manifests and indexes: media types, descriptors, building and parsing their JSON.

Parsing accepts both families (a registry may answer with either) and checks what a consumer relies on: the schema
version, the media type, and every descriptor's digest and size. Serialisation is deterministic (sorted keys are not
used: the field order is the one registries and Docker produce), so a manifest's digest is stable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..digest import Digest
from ..errors import InvalidDigest, StoreError

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Descriptor",
    "Index",
    "Manifest",
    "ManifestError",
    "Platform",
    "host_platform",
    "layer_compression",
    "machine_platform",
    "oci_architecture",
    "parse_index",
    "parse_manifest",
    "parse_manifest_or_index",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
_LAYER_COMPRESSION = {
    OCI_LAYER: "none",
    DOCKER_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER: "gzip",
    OCI_LAYER_ZSTD: "zstd",
}


class ManifestError(StoreError, ValueError):
    """A manifest or index whose JSON does not follow the spec."""


def layer_compression(media_type: str) -> str:
    """ "none", "gzip" or "zstd" for a layer media type; ManifestError for anything else."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise ManifestError(f"not a layer media type: {media_type}") from None


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            result["os.version"] = self.os_version
        if self.os_features:
            result["os.features"] = list(self.os_features)
        if self.variant:
            result["variant"] = self.variant
        return result

    @classmethod
    def from_json(cls, data: Any) -> Platform:
        if not isinstance(data, dict) or not isinstance(data.get("os"), str) or not data.get("architecture"):
            raise ManifestError(f"invalid platform: {data!r}")
        return cls(
            os=data["os"],
            architecture=str(data["architecture"]),
            variant=str(data.get("variant") or ""),
            os_version=str(data.get("os.version") or ""),
            os_features=tuple(data.get("os.features") or ()),
        )

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/amd64`, `linux/arm64/v8`."""
        parts = text.split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise ManifestError(f"invalid platform: {text!r} (expected os/arch[/variant])")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else "")

    def matches(self, other: Platform) -> bool:
        """Same os and architecture, and the same variant when both name one."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return not (self.variant and other.variant and self.variant != other.variant)

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


# `uname -m` (and the other spellings containerd accepts) to the OCI architecture and variant (GOARCH and GOARM, as
# containerd's platforms package names them). The one such table: the frontend reads it through oci_architecture.
_MACHINES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def oci_architecture(machine: str) -> tuple[str, str]:
    """The OCI architecture and variant of a machine name (`x86_64` is amd64); an unknown name is the architecture."""
    return _MACHINES.get(machine, (machine, ""))


def machine_platform(machine: str) -> Platform:
    """The Linux platform of a machine `uname -m` names; an unknown name is taken as the architecture."""
    architecture, variant = oci_architecture(machine)
    return Platform(os="linux", architecture=architecture, variant=variant)


def host_platform() -> Platform:
    """The platform of this machine, for the images it builds and imports."""
    return machine_platform(os.uname().machine)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: tuple[tuple[str, str], ...] = ()
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            result["urls"] = list(self.urls)
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        if self.platform is not None:
            result["platform"] = self.platform.to_json()
        return result

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError(f"invalid descriptor: {data!r}")
        media_type, digest_text, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestError(f"descriptor without a mediaType: {data!r}")
        if not isinstance(digest_text, str):
            raise ManifestError(f"descriptor without a digest: {data!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"descriptor with an invalid size: {data!r}")
        try:
            digest = Digest.parse(digest_text)
        except InvalidDigest as error:
            raise ManifestError(f"descriptor with an invalid digest: {error}") from None
        platform = data.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=_annotations(data.get("annotations")),
            platform=Platform.from_json(platform) if platform is not None else None,
            urls=tuple(data.get("urls") or ()),
        )


def _annotations(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ManifestError(f"invalid annotations: {value!r}")
    return tuple(sorted(value.items()))


def _json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Manifest:
    """An image manifest: one config and its layers, in order (base first)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = OCI_MANIFEST
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        return result

    def to_bytes(self) -> bytes:
        return _json_bytes(self.to_json())


@dataclass(frozen=True)
class Index:
    """An OCI index or a Docker manifest list: one manifest per platform."""

    manifests: tuple[Descriptor, ...]
    media_type: str = OCI_INDEX
    annotations: tuple[tuple[str, str], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [manifest.to_json() for manifest in self.manifests],
        }
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        return result

    def to_bytes(self) -> bytes:
        return _json_bytes(self.to_json())

    def select(self, platform: Platform) -> Descriptor | None:
        """The first manifest for `platform`; entries without a platform are skipped."""
        for descriptor in self.manifests:
            if descriptor.platform is not None and descriptor.platform.matches(platform):
                return descriptor
        return None


def _load(data: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"manifest is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ManifestError("manifest is not a JSON object")
    if value.get("schemaVersion") != 2:
        raise ManifestError(f"unsupported manifest schemaVersion: {value.get('schemaVersion')!r}")
    return value


def _media_type(value: dict[str, Any], declared: str | None) -> str | None:
    inner = value.get("mediaType")
    if inner is not None and declared is not None and inner != declared:
        raise ManifestError(f"manifest mediaType {inner} differs from the declared {declared}")
    result = inner if inner is not None else declared
    return result if isinstance(result, str) else None


def _manifest_from(value: dict[str, Any], media_type: str | None) -> Manifest:
    layers = value.get("layers")
    if "config" not in value or not isinstance(layers, list):
        raise ManifestError("an image manifest needs a config and a list of layers")
    return Manifest(
        config=Descriptor.from_json(value["config"]),
        layers=tuple(Descriptor.from_json(layer) for layer in layers),
        media_type=media_type or OCI_MANIFEST,
        annotations=_annotations(value.get("annotations")),
    )


def _index_from(value: dict[str, Any], media_type: str | None) -> Index:
    manifests = value.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError("an index needs a list of manifests")
    return Index(
        manifests=tuple(Descriptor.from_json(manifest) for manifest in manifests),
        media_type=media_type or OCI_INDEX,
        annotations=_annotations(value.get("annotations")),
    )


def parse_manifest(data: bytes | str, media_type: str | None = None) -> Manifest:
    """An image manifest; `media_type` is the one the registry declared (Content-Type), if any."""
    value = _load(data)
    declared = _media_type(value, media_type)
    if declared is not None and declared not in MANIFEST_MEDIA_TYPES:
        raise ManifestError(f"not an image manifest: {declared}")
    return _manifest_from(value, declared)


def parse_index(data: bytes | str, media_type: str | None = None) -> Index:
    value = _load(data)
    declared = _media_type(value, media_type)
    if declared is not None and declared not in INDEX_MEDIA_TYPES:
        raise ManifestError(f"not an index: {declared}")
    return _index_from(value, declared)


def parse_manifest_or_index(data: bytes | str, media_type: str | None = None) -> Manifest | Index:
    """Either, told apart by media type or, failing that, by shape (`manifests` versus `layers`)."""
    value = _load(data)
    declared = _media_type(value, media_type)
    if declared in INDEX_MEDIA_TYPES or (declared is None and "manifests" in value):
        return _index_from(value, declared)
    if declared in MANIFEST_MEDIA_TYPES or (declared is None and "layers" in value):
        return _manifest_from(value, declared)
    raise ManifestError(f"neither a manifest nor an index: {declared or 'no mediaType'}")
