"""What a container is, decided once by `create`: the process, its mounts, ports and options, as plain frozen data.

Stored in the container's record as JSON (never pickled: a record is read by every later command). Docker's
`Config`/`HostConfig` split is folded into one `ContainerSpec`; `config_json` gives Docker's inspect view of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BIND", "TMPFS", "VOLUME", "ContainerSpec", "MountSpec", "PortSpec", "ports_from_json", "ports_to_json"]

BIND = "bind"
VOLUME = "volume"
TMPFS = "tmpfs"


@dataclass(frozen=True)
class MountSpec:
    """A bind of a host path, a named volume, or a tmpfs, at `target` in the container."""

    kind: str
    target: str
    source: str = ""  # host path (bind) or volume name (volume)
    readonly: bool = False
    size_bytes: int = 0  # tmpfs
    mode: int = 0o1777  # tmpfs
    anonymous: bool = False  # a volume made for an image's VOLUME or a `-v /path`
    copy_image_content: bool = True  # volume: fill an empty volume from the image, as Docker does


@dataclass(frozen=True)
class PortSpec:
    """`-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`; host port 0 until the container starts and is given one."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def __str__(self) -> str:
        """As `docker ps` shows a published port: `0.0.0.0:49153->80/tcp`."""
        host = self.host_ip or "0.0.0.0"
        return f"{host}:{self.host_port}->{self.container_port}/{self.protocol}"

    @property
    def private(self) -> str:
        return f"{self.container_port}/{self.protocol}"


def ports_to_json(ports: tuple[PortSpec, ...]) -> str:
    return json.dumps([asdict(port) for port in ports]) if ports else ""


def ports_from_json(text: str) -> tuple[PortSpec, ...]:
    return tuple(PortSpec(**port) for port in json.loads(text)) if text else ()


@dataclass(frozen=True)
class ContainerSpec:
    """The process (args already combined from entrypoint and cmd), its environment and every run option."""

    args: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # the process's: PATH, HOSTNAME, TERM first, as Docker's daemon adds them
    config_env: tuple[str, ...] = ()  # the image's and the user's only: what `commit` writes into the image
    cwd: str = "/"
    user: str = ""
    hostname: str = ""
    network: str = "default"
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    auto_remove: bool = False
    read_only: bool = False
    init: bool = False
    stop_signal: str = "SIGTERM"
    stop_timeout: int = 10
    labels: tuple[tuple[str, str], ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    ports: tuple[PortSpec, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ContainerSpec:
        data: dict[str, Any] = json.loads(text)
        tuples = ("args", "entrypoint", "cmd", "env", "config_env")
        values: dict[str, Any] = {
            key: tuple(data[key]) if key in tuples else data[key] for key in data if key in _FIELDS
        }
        values["labels"] = tuple((str(key), str(value)) for key, value in data.get("labels", ()))
        values["mounts"] = tuple(MountSpec(**mount) for mount in data.get("mounts", ()))
        values["ports"] = tuple(PortSpec(**port) for port in data.get("ports", ()))
        return cls(**values)

    def command_text(self) -> str:
        """The command as `docker ps` shows it: the words joined by spaces, a word with white space in quotes."""
        return " ".join(f"'{word}'" if not word or any(c in word for c in " \t\n") else word for word in self.args)


_FIELDS = frozenset(ContainerSpec.__dataclass_fields__)
