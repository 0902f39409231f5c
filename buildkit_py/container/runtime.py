"""The container's namespaces, root filesystem and first process, set up by its monitor (monitor.py).

    monitor (new mount, uts, ipc and net namespaces; the overlay mounted on a private tmpfs; holds the stdio)
      ├── slirp4netns for the default network, with an API socket for `-p` forwards
      └── PID 1 of a new pid namespace: its own copy of the mounts, /proc, /dev, /sys with Docker's masks,
          volumes and binds, pivot_root, then process.exec_process (user, capabilities, seccomp, execve)

The mount code is the RUN sandbox's (exec/sandbox.py); what differs: the upper dir is the container's own and lasts
across runs, volumes are filled from the image on first use, the rootfs may be read-only, and stdio is the
monitor's (pipes, or a terminal whose master comes back over a socket).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ContainerError, ExecError
from ..exec import syscalls as sc
from ..exec import wire
from ..exec.executor import AnyMount, Mount, ProcessSpec, TmpfsMount
from ..exec.network import SlirpHelper, prepare_slirp, slirp_binary, start_slirp
from ..exec.rootpath import resolve_in_root
from ..exec.sandbox import PlacedMount, _etc_files, _mount_container_fs, _mount_stubs, _namespace_flags, mount_overlay
from .cgroups import Cgroup
from .process import ProcessConfig, exec_process
from .spec import BIND, TMPFS, ContainerSpec, PortSpec
from .volumes import fill_volume

__all__ = ["InitProcess", "RootfsPlan", "add_port_forwards", "enter_namespaces", "prepare_rootfs", "start_init"]

SLIRP_SOCKET = "slirp.sock"
GUEST_ADDRESS = "10.0.2.100"  # slirp4netns --configure's address for the namespace


@dataclass(frozen=True)
class RootfsPlan:
    lowers: tuple[Path, ...]  # init layer first, then the image's layers, topmost first
    upper: Path
    work: Path
    scratch: Path  # the monitor mounts a private tmpfs here
    mounts: tuple[AnyMount, ...]
    fill_volumes: tuple[tuple[str, Path], ...]  # (target, volume data) to fill from the image when empty


@dataclass
class InitProcess:
    pid: int
    error_r: int
    alive_w: int
    console: socket.socket | None


def enter_namespaces(spec: ContainerSpec, directory: Path) -> SlirpHelper | None:
    """Move the calling monitor into the container's new namespaces (all but pid) and start its network."""
    flags = _namespace_flags(spec.network)
    slirp = None
    if spec.network == "default":
        extra = (f"--api-socket={SLIRP_SOCKET}",) if spec.ports else ()
        previous = os.getcwd()
        os.chdir(directory)  # slirp4netns binds its API socket relative to this; store paths may be long
        try:
            slirp = prepare_slirp(slirp_binary(), extra)
        finally:
            os.chdir(previous)
    elif spec.ports and spec.network != "host":
        raise ContainerError("port publishing needs the default network (not --network=none)")
    sc.unshare(flags)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    if flags & sc.CLONE_NEWNET:
        sc.loopback_up()
    if slirp is not None:
        start_slirp(slirp, os.getpid())
    sc.sethostname(spec.hostname)
    return slirp


def add_port_forwards(directory: Path, ports: Sequence[PortSpec]) -> None:
    """Ask slirp4netns (through its API socket) to forward each published port; ContainerError when one fails."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for port in ports:
            request = {
                "execute": "add_hostfwd",
                "arguments": {
                    "proto": port.protocol,
                    "host_addr": port.host_ip or "0.0.0.0",
                    "host_port": port.host_port,
                    "guest_port": port.container_port,
                },
            }
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as api:
                api.connect(f"/proc/self/fd/{fd}/{SLIRP_SOCKET}")
                api.sendall(json.dumps(request).encode())
                api.shutdown(socket.SHUT_WR)
                answer = b""
                while chunk := api.recv(4096):
                    answer += chunk
            try:
                document = json.loads(answer)
            except ValueError:
                document = {"error": {"desc": answer.decode(errors="replace")}}
            if "error" in document:
                description = document["error"].get("desc", "") if isinstance(document["error"], dict) else ""
                raise ContainerError(
                    f"driver failed programming external connectivity: cannot expose port {port}: {description}"
                )
    finally:
        os.close(fd)


def prepare_rootfs(plan: RootfsPlan, spec: ContainerSpec) -> tuple[Path, Path, list[PlacedMount], Path]:
    """In the monitor's mount namespace: the overlay, the /etc files, mountpoints, and volumes filled from the image.
    Returns (merged root, etc folder, placed mounts, an empty folder)."""
    sc.mount("tmpfs", plan.scratch, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=0700")
    merged = plan.scratch / "root"
    merged.mkdir()
    empty = plan.scratch / "empty"
    empty.mkdir(mode=0o755)
    mount_overlay(plan.lowers, merged, plan.upper, plan.work, flags=sc.MS_NODEV)
    etc_dir = plan.scratch / "etc"
    _etc_files(etc_dir, ProcessSpec(args=(), hostname=spec.hostname, network=spec.network))
    (etc_dir / "hosts").write_text(_hosts(spec))
    for target, data in plan.fill_volumes:
        source = resolve_in_root(merged, target)
        fill_volume(source, data)
    placed, _ = _mount_stubs(merged, plan.mounts, [None] * len(plan.mounts))
    return merged, etc_dir, placed, empty


def _hosts(spec: ContainerSpec) -> str:
    """Docker's /etc/hosts for a container: loopback names, then the container's address and host name."""
    if spec.network == "host":
        try:
            return Path("/etc/hosts").read_text()
        except OSError:
            return ""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    if spec.network == "default":
        lines.append(f"{GUEST_ADDRESS}\t{spec.hostname}")
    return "\n".join(lines) + "\n"


def start_init(
    merged: Path,
    etc_dir: Path,
    placed: Sequence[PlacedMount],
    empty: Path,
    spec: ContainerSpec,
    stdio: tuple[int, int, int],
    cgroup: Cgroup | None,
) -> InitProcess:
    """Fork the container's PID 1 (the monitor unshared the pid namespace in enter_namespaces). Its exec (or the error that stopped it) shows on the
    returned error pipe; with a terminal, the pty master arrives on `console` first."""
    config = ProcessConfig(
        args=spec.args, env=spec.env, cwd=spec.cwd, user=spec.user, hostname=spec.hostname, tty=spec.tty, init=spec.init
    )
    error_r, error_w = os.pipe()
    alive_r, alive_w = os.pipe()
    console_parent, console_child = socket.socketpair() if spec.tty else (None, None)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(error_r)
            os.close(alive_w)
            if console_parent is not None:
                console_parent.close()
            for fd, target in zip(stdio, (0, 1, 2), strict=True):
                os.dup2(fd, target)
            _init(merged, etc_dir, placed, empty, spec, config, cgroup, console_child, alive_r)
        except BaseException as exc:  # noqa: BLE001 - everything must reach the monitor
            os.write(error_w, wire.encode_error(exc))
        finally:
            os._exit(127)
    os.close(error_w)
    os.close(alive_r)
    if console_child is not None:
        console_child.close()
    return InitProcess(pid, error_r, alive_w, console_parent)


def _init(
    merged: Path,
    etc_dir: Path,
    placed: Sequence[PlacedMount],
    empty: Path,
    spec: ContainerSpec,
    config: ProcessConfig,
    cgroup: Cgroup | None,
    console: socket.socket | None,
    alive_r: int,
) -> None:
    sc.unshare(sc.CLONE_NEWNS)
    if cgroup is not None:
        cgroup.join()
    if spec.read_only:
        sc.mount(None, merged, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_NODEV)
    _mount_container_fs(merged, etc_dir, placed, empty, hardened=True)
    os.chdir(merged)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
    exec_process(config, console, alive_r)


def wait_started(init: InitProcess) -> int | None:
    """The pty master (terminal containers), once the init has exec'd; raises the error that stopped it."""
    master = None
    if init.console is not None:
        try:
            _, fds, _, _ = socket.recv_fds(init.console, 16, 1)
        except OSError:
            fds = []
        init.console.close()
        master = fds[0] if fds else None
    with os.fdopen(init.error_r, "rb") as errors:
        failure = errors.read(wire.MAX_ANSWER_BYTES + 1)
    if failure:
        if master is not None:
            os.close(master)
        wire.decode_answer(failure)
        raise ExecError("the container's init sent an answer that is not an error")
    if init.console is not None and master is None:
        raise ExecError("the container's init did not send its terminal")
    return master


def to_mounts(spec: ContainerSpec, volume_paths: dict[str, Path]) -> tuple[AnyMount, ...]:
    mounts: list[AnyMount] = []
    for mount in spec.mounts:
        if mount.kind == BIND:
            mounts.append(Mount(Path(mount.source), mount.target, mount.readonly))
        elif mount.kind == TMPFS:
            mounts.append(TmpfsMount(mount.target, mount.size_bytes or None, mount.mode, mount.readonly))
        else:
            mounts.append(Mount(volume_paths[mount.source], mount.target, mount.readonly))
    return tuple(mounts)
