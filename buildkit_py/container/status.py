"""How `docker ps` and `docker inspect` describe a container: its status line and its inspect document."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..store.containers import ContainerRow
from ..units import human_duration
from .logs import rfc3339_nano
from .spec import ContainerSpec, PortSpec, ports_from_json

__all__ = ["inspect_document", "status_text", "timestamp"]

_ZERO_TIME = "0001-01-01T00:00:00Z"


def timestamp(seconds: float) -> str:
    return rfc3339_nano(int(seconds * 1_000_000_000)) if seconds else _ZERO_TIME


def status_text(row: ContainerRow, now: float | None = None) -> str:
    """`Up 3 seconds`, `Up 2 minutes (Paused)`, `Exited (0) 5 seconds ago`, `Created`."""
    now = time.time() if now is None else now
    if row.state == "running":
        return f"Up {human_duration(max(0.0, now - row.started_at))}"
    if row.state == "paused":
        return f"Up {human_duration(max(0.0, now - row.started_at))} (Paused)"
    if row.state == "exited":
        return f"Exited ({row.exit_code}) {human_duration(max(0.0, now - row.finished_at))} ago"
    return row.state.capitalize()


def inspect_document(row: ContainerRow, log_path: str, volume_paths: dict[str, str]) -> dict[str, Any]:
    """A container as `docker container inspect` shows it (the fields pybuild has)."""
    spec = ContainerSpec.from_json(row.spec)
    mounts = []
    for mount in spec.mounts:
        source = volume_paths.get(mount.source, mount.source) if mount.kind == "volume" else mount.source
        entry: dict[str, Any] = {"Type": mount.kind, "Source": source, "Destination": mount.target}
        if mount.kind == "volume":
            entry["Name"] = mount.source
            entry["Driver"] = "local"
        entry["RW"] = not mount.readonly
        mounts.append(entry)
    return {
        "Id": row.container_id,
        "Created": timestamp(row.created),
        "Path": spec.args[0] if spec.args else "",
        "Args": list(spec.args[1:]),
        "State": {
            "Status": row.state,
            "Running": row.state in ("running", "paused"),
            "Paused": row.state == "paused",
            "Restarting": False,
            "OOMKilled": False,
            "Dead": row.state == "dead",
            "Pid": row.pid,
            "ExitCode": row.exit_code,
            "Error": row.error,
            "StartedAt": timestamp(row.started_at),
            "FinishedAt": timestamp(row.finished_at),
        },
        "Image": row.image_id,
        "LogPath": log_path,
        "Name": "/" + row.name,
        "RestartCount": row.restart_count,
        "Driver": "overlay",
        "HostConfig": {
            "AutoRemove": spec.auto_remove,
            "NetworkMode": "bridge" if spec.network == "default" else spec.network,
            "ReadonlyRootfs": spec.read_only,
            "Init": spec.init,
            "PortBindings": _bindings(spec.ports, requested=True),
        },
        "NetworkSettings": {"Ports": _bindings(ports_from_json(row.ports), requested=False)},
        "Mounts": mounts,
        "Config": {
            "Hostname": spec.hostname,
            "User": spec.user,
            "Tty": spec.tty,
            "OpenStdin": spec.open_stdin,
            "StdinOnce": spec.stdin_once,
            "Env": list(spec.env),
            "Cmd": list(spec.cmd) or None,
            "Image": row.image_name,
            "Volumes": {mount.target: {} for mount in spec.mounts if mount.kind == "volume"} or None,
            "WorkingDir": spec.cwd,
            "Entrypoint": list(spec.entrypoint) or None,
            "Labels": dict(spec.labels),
            "StopSignal": spec.stop_signal,
            "StopTimeout": spec.stop_timeout,
        },
    }


def _bindings(ports: tuple[PortSpec, ...], requested: bool) -> dict[str, list[dict[str, str]]]:
    """Docker's port maps: `{"80/tcp": [{"HostIp": "", "HostPort": ""}]}` as asked for (a random port is ""), or
    `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}]}` as given."""
    found: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        host_ip = port.host_ip if requested else port.host_ip or "0.0.0.0"
        host_port = str(port.host_port) if port.host_port else ""
        found.setdefault(port.private, []).append({"HostIp": host_ip, "HostPort": host_port})
    return found


def created_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")
