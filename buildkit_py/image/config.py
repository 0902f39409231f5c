"""The OCI image configuration as immutable data: what a Dockerfile's metadata instructions change."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..digest import Digest

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def rfc3339(timestamp: float) -> str:
    """A Unix time as image configs write `created`: RFC 3339 in UTC with microseconds."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Docker's container config with every field at its zero value, as `docker image inspect` and docker archives show it.
DOCKER_EMPTY_CONTAINER_CONFIG: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode_json(document: dict[str, Any]) -> dict[str, Any]:
    return {_valid_unicode(key): _valid_unicode(item) for key, item in document.items()}


def _valid_unicode(value: Any) -> Any:
    """`value` with every lone surrogate (a byte of a Dockerfile that was not UTF-8, kept by surrogateescape) turned
    into U+FFFD, one per byte, as Go's JSON encoder writes invalid UTF-8 in Docker's image config."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_valid_unicode(key): _valid_unicode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_valid_unicode(item) for item in value]
    return value


@dataclass(frozen=True)
class Healthcheck:
    """HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D] [--retries=N] CMD ... | NONE.

    Durations are nanoseconds, as the image config stores them."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
            ("Retries", self.retries),
        ):
            if value:
                result[key] = value
        return result

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Healthcheck:
        return cls(
            test=tuple(data.get("Test") or ()),
            interval=int(data.get("Interval") or 0),
            timeout=int(data.get("Timeout") or 0),
            start_period=int(data.get("StartPeriod") or 0),
            start_interval=int(data.get("StartInterval") or 0),
            retries=int(data.get("Retries") or 0),
        )


@dataclass(frozen=True)
class ContainerConfig:
    """The `config` object of an OCI image config. None means "not set" (omitted from JSON)."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    stop_signal: str = ""
    healthcheck: Healthcheck | None = None
    shell: tuple[str, ...] | None = None
    on_build: tuple[str, ...] = ()
    args_escaped: bool = False

    def env_map(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for entry in self.env:
            key, _, value = entry.partition("=")
            result[key] = value
        return result

    def with_env(self, key: str, value: str) -> ContainerConfig:
        entries = [entry for entry in self.env if entry.partition("=")[0] != key]
        position = next((i for i, entry in enumerate(self.env) if entry.partition("=")[0] == key), None)
        if position is None:
            entries.append(f"{key}={value}")
        else:
            entries.insert(position, f"{key}={value}")
        return replace(self, env=tuple(entries))

    def with_label(self, key: str, value: str) -> ContainerConfig:
        labels = dict(self.labels)
        labels[key] = value
        return replace(self, labels=tuple(sorted(labels.items())))

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.user:
            result["User"] = self.user
        if self.exposed_ports:
            result["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            result["Env"] = list(self.env)
        if self.entrypoint is not None:
            result["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            result["Cmd"] = list(self.cmd)
        if self.volumes:
            result["Volumes"] = {volume: {} for volume in self.volumes}
        if self.working_dir:
            result["WorkingDir"] = self.working_dir
        if self.labels:
            result["Labels"] = dict(self.labels)
        if self.stop_signal:
            result["StopSignal"] = self.stop_signal
        if self.healthcheck is not None:
            result["Healthcheck"] = self.healthcheck.to_json()
        if self.shell is not None:
            result["Shell"] = list(self.shell)
        if self.on_build:
            result["OnBuild"] = list(self.on_build)
        if self.args_escaped:
            result["ArgsEscaped"] = True
        return _valid_unicode_json(result)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ContainerConfig:
        data = data or {}

        def optional_list(key: str) -> tuple[str, ...] | None:
            value = data.get(key)
            return None if value is None else tuple(value)

        healthcheck = data.get("Healthcheck")
        return cls(
            user=data.get("User") or "",
            exposed_ports=tuple(sorted(data.get("ExposedPorts") or {})),
            env=tuple(data.get("Env") or ()),
            entrypoint=optional_list("Entrypoint"),
            cmd=optional_list("Cmd"),
            volumes=tuple(sorted(data.get("Volumes") or {})),
            working_dir=data.get("WorkingDir") or "",
            labels=tuple(sorted((data.get("Labels") or {}).items())),
            stop_signal=data.get("StopSignal") or "",
            healthcheck=Healthcheck.from_json(healthcheck) if healthcheck else None,
            shell=optional_list("Shell"),
            on_build=tuple(data.get("OnBuild") or ()),
            args_escaped=bool(data.get("ArgsEscaped")),
        )


@dataclass(frozen=True)
class HistoryEntry:
    created: str
    created_by: str
    empty_layer: bool = False
    comment: str = ""
    author: str = ""

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"created": self.created, "created_by": self.created_by}
        if self.author:
            result["author"] = self.author
        if self.comment:
            result["comment"] = self.comment
        if self.empty_layer:
            result["empty_layer"] = True
        return result

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryEntry:
        return cls(
            created=data.get("created", ""),
            created_by=data.get("created_by", ""),
            empty_layer=bool(data.get("empty_layer")),
            comment=data.get("comment", ""),
            author=data.get("author", ""),
        )


@dataclass(frozen=True)
class ImageConfig:
    """An OCI image config (application/vnd.oci.image.config.v1+json). `diff_ids` are sha256 of uncompressed layers."""

    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[Digest, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    architecture: str = "amd64"
    os: str = "linux"
    variant: str = ""
    created: str = ""
    author: str = ""

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            result["variant"] = self.variant
        if self.created:
            result["created"] = self.created
        if self.author:
            result["author"] = self.author
        result["config"] = self.config.to_json()
        result["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in self.diff_ids]}
        result["history"] = [entry.to_json() for entry in self.history]
        return _valid_unicode_json(result)

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageConfig:
        rootfs = data.get("rootfs") or {}
        return cls(
            config=ContainerConfig.from_json(data.get("config")),
            diff_ids=tuple(Digest.parse(d) for d in rootfs.get("diff_ids") or ()),
            history=tuple(HistoryEntry.from_json(h) for h in data.get("history") or ()),
            architecture=data.get("architecture", "amd64"),
            os=data.get("os", "linux"),
            variant=data.get("variant", ""),
            created=data.get("created", ""),
            author=data.get("author", ""),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageConfig:
        return cls.from_json(json.loads(data))
