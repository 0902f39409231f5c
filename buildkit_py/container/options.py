"""`pybuild run`/`create` options -> a ContainerSpec, merged with the image's config as Docker merges them.

Parsing follows the Docker 20.10 CLI and daemon: `-v` (bind, named or anonymous volume), `--mount`, `--tmpfs`, `-p`,
`-e`/`--env-file`, and the daemon's environment (PATH, HOSTNAME, TERM, then the image's and the user's variables).
Every mistake is a ContainerError with Docker's wording, raised before anything is created.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ContainerError
from ..image.config import DEFAULT_PATH, ContainerConfig
from ..store.volumes import check_volume_name
from .signals import parse_signal, signal_name
from .spec import BIND, TMPFS, VOLUME, ContainerSpec, MountSpec, PortSpec

__all__ = [
    "RunOptions",
    "build_spec",
    "exposed_ports",
    "parse_mount",
    "parse_port",
    "parse_size",
    "parse_tmpfs",
    "parse_volume",
    "read_env_file",
]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?", re.IGNORECASE)


@dataclass(frozen=True)
class RunOptions:
    command: tuple[str, ...] = ()
    entrypoint: str | None = None
    env: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    workdir: str = ""
    user: str | None = None
    hostname: str = ""
    ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    network: str = "default"
    read_only: bool = False
    init: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None
    labels: tuple[str, ...] = ()
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    attach_stdin: bool = False  # `run` in the foreground with -i: the container's stdin closes with ours
    publish_all: bool = False  # -P

    @classmethod
    def from_fields(cls, fields: Mapping[str, object]) -> RunOptions:
        """The options from their fields as JSON carried them (lists for tuples); ContainerError for anything else."""
        values: dict[str, object] = {}
        for name, value in fields.items():
            if name not in _RUN_OPTION_FIELDS:
                raise ContainerError(f"unknown run option {name!r}")
            values[name] = tuple(str(item) for item in value) if isinstance(value, list) else value
        try:
            return cls(**values)  # type: ignore[arg-type]
        except TypeError as error:
            raise ContainerError(f"bad run options: {error}") from None


_RUN_OPTION_FIELDS = frozenset(RunOptions.__dataclass_fields__)


def parse_size(text: str) -> int:
    """Docker's RAMInBytes: `64m`, `1g`, `512k`, `100` (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ContainerError(f"invalid size: '{text}'")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgtp".index(unit or " "))


def _absolute(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise ContainerError(
            f"invalid volume specification: '{spec}': invalid mount config for type \"volume\": "
            f"invalid mount path: '{path}' mount path must be absolute"
        )
    return os.path.normpath(path) if path != "/" else path


def parse_volume(spec: str) -> MountSpec:
    """`-v HOST:CTR[:ro|rw]`, `-v NAME:CTR[:ro|rw]` or `-v /CTR` (an anonymous volume)."""
    parts = spec.split(":")
    if not spec or len(parts) > 3 or any(part == "" for part in parts):
        raise ContainerError(f"invalid volume specification: '{spec}'")
    readonly = False
    if len(parts) == 3:
        modes = parts[2].split(",")
        for mode in modes:
            if mode not in ("ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "slave", "rslave"):
                raise ContainerError(f"invalid mode: {parts[2]}")
        readonly = "ro" in modes
    if len(parts) == 1:
        return MountSpec(VOLUME, _absolute(parts[0], spec), os.urandom(32).hex(), anonymous=True)
    source, target = parts[0], _absolute(parts[1], spec)
    if source.startswith("/"):
        return MountSpec(BIND, target, os.path.normpath(source), readonly)
    if source.startswith(".") or "/" in source:
        raise ContainerError(
            f"invalid volume specification: '{spec}': invalid mount config for type \"bind\": "
            "invalid mount path: bind source path must be absolute"
        )
    nocopy = len(parts) == 3 and "nocopy" in parts[2].split(",")
    return MountSpec(VOLUME, target, check_volume_name(source), readonly, copy_image_content=not nocopy)


def _bool(value: str, key: str) -> bool:
    if value.lower() in ("", "1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise ContainerError(f"invalid value for {key}: {value}")


_MOUNT_KEYS = frozenset(
    {"source", "src", "target", "destination", "dst", "readonly", "ro", "consistency", "bind-propagation",
     "bind-nonrecursive", "volume-nocopy", "volume-driver", "volume-label", "volume-opt", "tmpfs-size", "tmpfs-mode"}
)  # fmt: skip  # the Docker CLI's (opts/mount.go)
_SUPPORTED = {
    "bind-propagation": ("private", "rprivate"),  # a container's mounts are private, recursively
    "bind-nonrecursive": ("false", "0"),
    "volume-driver": ("local",),
}


def _check_mount_fields(fields: Mapping[str, str], kind: str, text: str) -> None:
    """Docker's refusals: a key its CLI does not know, and options of one mount type on another; then ours: options
    pybuild does not implement, refused rather than ignored."""
    for key, value in fields.items():
        if key not in _MOUNT_KEYS:
            raise ContainerError(f"unexpected key '{key}' in '{text}'")
        prefix = key.partition("-")[0]
        if prefix in (BIND, VOLUME, TMPFS) and prefix != kind:
            raise ContainerError(f"invalid mount config: cannot mix '{prefix}-*' options with mount type '{kind}'")
        if key in ("volume-label", "volume-opt") or (key in _SUPPORTED and value.lower() not in _SUPPORTED[key]):
            raise ContainerError(f"--mount {key}={value} is not supported by pybuild")


def parse_mount(text: str) -> MountSpec:
    """`--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=...][,tmpfs-mode=...]`."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, equals, value = item.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        if key in ("readonly", "ro", "volume-nocopy") and not equals:
            value = "true"
        elif not equals:
            raise ContainerError(f"invalid field '{item}' must be a key=value pair")
        fields[key] = value
    kind = fields.pop("type", "volume")
    _check_mount_fields(fields, kind, text)
    source = fields.pop("source", fields.pop("src", ""))
    target = fields.pop("target", fields.pop("destination", fields.pop("dst", "")))
    readonly = _bool(fields.pop("readonly", fields.pop("ro", "false")), "readonly")
    if not target:
        raise ContainerError("invalid argument: target is required")
    if not target.startswith("/"):
        raise ContainerError(
            f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute"
        )
    target = os.path.normpath(target)
    if kind == BIND:
        if not source:
            raise ContainerError('invalid mount config for type "bind": field Source must not be empty')
        if not Path(source).is_absolute() or not os.path.lexists(source):
            raise ContainerError(f'invalid mount config for type "bind": bind source path does not exist: {source}')
        return MountSpec(BIND, target, os.path.normpath(source), readonly)
    if kind == VOLUME:
        nocopy = _bool(fields.pop("volume-nocopy", "false"), "volume-nocopy")
        if not source:
            return MountSpec(VOLUME, target, os.urandom(32).hex(), readonly, anonymous=True)
        return MountSpec(VOLUME, target, check_volume_name(source), readonly, copy_image_content=not nocopy)
    if kind == TMPFS:
        if source:
            raise ContainerError('invalid mount config for type "tmpfs": field Source must not be specified')
        size = parse_size(fields.pop("tmpfs-size")) if "tmpfs-size" in fields else 0
        mode = _octal_mode(fields.pop("tmpfs-mode", "1777"))
        return MountSpec(TMPFS, target, "", readonly, size_bytes=size, mode=mode)
    raise ContainerError(f"invalid mount type: {kind!r}")


def _octal_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise ContainerError(f"invalid tmpfs mode: {text}") from None
    if not 0 <= mode <= 0o7777:
        raise ContainerError(f"invalid tmpfs mode: {text}")
    return mode


def parse_tmpfs(text: str) -> MountSpec:
    """`--tmpfs /path[:size=64m,mode=1777,ro]`."""
    target, _, options = text.partition(":")
    if not target.startswith("/"):
        raise ContainerError(f"invalid mount path: '{target}' mount path must be absolute")
    size, mode, readonly = 0, 0o1777, False
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "size":
            size = parse_size(value)
        elif key == "mode":
            mode = _octal_mode(value)
        elif key == "ro":
            readonly = True
    return MountSpec(TMPFS, os.path.normpath(target), "", readonly, size_bytes=size, mode=mode)


def _port(text: str, what: str, spec: str, allow_random: bool = False) -> int:
    if allow_random and text == "":
        return 0  # a random host port, picked when the container starts
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ContainerError(f"Invalid {what}: {text or spec}")
    return int(text)


def parse_port(spec: str) -> PortSpec:
    """`-p [[IP:][HOST]:]CONTAINER[/tcp|udp]` (Docker's nat.ParsePortSpec): no HOST, or an empty one, publishes
    the container's port on a random host port."""
    body, _, protocol = spec.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp"):
        raise ContainerError(f"invalid proto: {protocol}")
    if body.startswith("["):
        raise ContainerError(f"publishing a port on an IPv6 address is not supported: {spec}")
    parts = body.split(":")
    if len(parts) > 3:
        raise ContainerError(f'invalid port specification: "{spec}"')
    container = _port(parts[-1], "containerPort", spec)
    host = _port(parts[-2], "hostPort", spec, allow_random=True) if len(parts) >= 2 else 0
    host_ip = parts[0] if len(parts) == 3 else ""
    if host_ip:
        try:
            socket.inet_pton(socket.AF_INET, host_ip)
        except OSError:
            raise ContainerError(f"Invalid ip address: {host_ip}") from None
    return PortSpec(host, container, protocol, host_ip)


def exposed_ports(image: ContainerConfig, published: Sequence[PortSpec]) -> list[PortSpec]:
    """`-P`: every port the image EXPOSEs (`80/tcp`, `53/udp`) that `-p` did not publish, on random host ports."""
    taken = {(port.container_port, port.protocol) for port in published}
    ports = []
    for exposed in image.exposed_ports:
        number, _, protocol = exposed.partition("/")
        if number.isdigit() and (int(number), protocol or "tcp") not in taken:
            ports.append(PortSpec(0, int(number), protocol or "tcp"))
    return ports


def read_env_file(path: str, host_env: Mapping[str, str]) -> list[str]:
    """`--env-file` as the Docker CLI reads it (opts/file.go): a UTF-8 BOM and each line's leading white space go,
    blank lines and `#` comments are skipped, `NAME=VALUE` is kept as written (no trimming of the value), and a bare
    `NAME` takes the caller's value, or is left out when the caller has none."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ContainerError(f"open {path}: {error.strerror.lower() if error.strerror else error}") from None
    entries = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), start=1):
        try:
            line = raw.decode().lstrip()
        except UnicodeDecodeError:
            raise ContainerError(f"env file {path} contains invalid utf8 bytes at line {number}") from None
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name = name.lstrip(" \t")
        if any(space in name for space in " \t"):
            raise ContainerError(f"poorly formatted environment: variable '{name}' contains whitespaces")
        if not name:
            raise ContainerError(f"poorly formatted environment: no variable name on line '{line}'")
        entries.extend(_env_entry(name, equals, value, host_env))
    return entries


def _env_entry(name: str, equals: str, value: str, host_env: Mapping[str, str]) -> list[str]:
    """`NAME=VALUE` as given; a bare `NAME` takes the caller's value, and is left out when the caller has none."""
    if equals:
        return [f"{name}={value}"]
    return [f"{name}={host_env[name]}"] if name in host_env else []


def _env_entries(options: RunOptions, host_env: Mapping[str, str]) -> list[str]:
    entries = [entry for path in options.env_files for entry in read_env_file(path, host_env)]
    for word in options.env:
        name, equals, value = word.partition("=")
        if not name:
            raise ContainerError(f"invalid environment variable: {word}")
        entries.extend(_env_entry(name, equals, value, host_env))
    return entries


def _replace_or_append(base: list[str], overrides: Sequence[str]) -> list[str]:
    result = list(base)
    positions = {entry.partition("=")[0]: index for index, entry in enumerate(result)}
    for entry in overrides:
        name = entry.partition("=")[0]
        if name in positions:
            result[positions[name]] = entry
        else:
            positions[name] = len(result)
            result.append(entry)
    return result


def build_spec(image: ContainerConfig, options: RunOptions, container_id: str) -> ContainerSpec:
    """The container's spec from its image's config and the user's options (Docker's merge rules)."""
    entrypoint = image.entrypoint or ()
    cmd = image.cmd or ()
    if options.entrypoint is not None:
        entrypoint = (options.entrypoint,) if options.entrypoint else ()
        cmd = ()
    if options.command:
        cmd = options.command
    args = (*entrypoint, *cmd)
    if not args:
        raise ContainerError("No command specified")
    workdir = options.workdir or image.working_dir or "/"
    if not workdir.startswith("/"):
        raise ContainerError(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    if options.network not in ("default", "bridge", "none", "host"):
        raise ContainerError(f"network {options.network} not found (use default, bridge, none or host)")
    network = "default" if options.network == "bridge" else options.network
    hostname = options.hostname or container_id[:12]
    if network == "host" and not options.hostname:
        hostname = os.uname().nodename
    config_env = _replace_or_append(list(image.env), _env_entries(options, os.environ))
    daemon_env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"] + (["TERM=xterm"] if options.tty else [])
    env = _replace_or_append(daemon_env, config_env)

    mounts = [parse_volume(text) for text in options.volumes]
    mounts += [parse_mount(text) for text in options.mounts]
    mounts += [parse_tmpfs(text) for text in options.tmpfs]
    targets = [mount.target for mount in mounts]
    duplicates = {target for target in targets if targets.count(target) > 1}
    if duplicates:
        raise ContainerError(f"Duplicate mount point: {min(duplicates)}")
    for volume in image.volumes:
        target = os.path.normpath(volume) if volume.startswith("/") else "/" + volume
        if target not in targets:
            mounts.append(MountSpec(VOLUME, target, os.urandom(32).hex(), anonymous=True))
            targets.append(target)

    ports = [parse_port(text) for text in options.ports]
    if options.publish_all:
        ports += exposed_ports(image, ports)

    stop_signal = options.stop_signal or image.stop_signal or "SIGTERM"
    stop_signal = signal_name(parse_signal(stop_signal))
    labels = dict(image.labels)
    for label in options.labels:
        key, _, value = label.partition("=")
        labels[key] = value
    return ContainerSpec(
        args=args,
        entrypoint=tuple(entrypoint),
        cmd=tuple(cmd),
        env=tuple(env),
        config_env=tuple(config_env),
        cwd=workdir,
        user=options.user if options.user is not None else image.user,
        hostname=hostname,
        network=network,
        tty=options.tty,
        open_stdin=options.interactive,
        stdin_once=options.attach_stdin,
        auto_remove=options.auto_remove,
        read_only=options.read_only,
        init=options.init,
        stop_signal=stop_signal,
        stop_timeout=10 if options.stop_timeout is None else options.stop_timeout,
        labels=tuple(sorted(labels.items())),
        mounts=tuple(mounts),
        ports=tuple(ports),
    )
