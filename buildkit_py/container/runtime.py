"""The container's namespaces, root filesystem and first process, set up by its monitor (monitor.py).

    monitor (new mount, uts, ipc and net namespaces; the overlay mounted on a private tmpfs; holds the stdio)
      ├── slirp4netns for the default network, with an API socket for `-p` forwards
      └── PID 1 of a new pid namespace: its own copy of the mounts, /proc, /dev, /sys with Docker's masks,
          volumes and binds (mounts.py: through descriptors, beneath the root), pivot_root, then
          process.exec_process (user, capabilities, seccomp, execve)

The same isolation as the RUN sandbox (exec/sandbox.py); what differs: the upper dir is the container's own and
lasts across runs, volumes are filled from the image on first use, mount targets may have been planted by the
container itself, the rootfs may be read-only, and stdio is the monitor's (pipes, or a terminal whose master comes
back over a socket). The monitor starts slirp4netns first and waits for it last, so the network comes up while the
root is being mounted.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ContainerError, ExecError
from ..exec import syscalls as sc
from ..exec import wire
from ..exec.mountns import private_mount_namespace
from ..exec.network import SlirpHelper, prepare_slirp, release_slirp, resolv_conf_for, slirp_binary, wait_slirp
from ..exec.overlay import mount_overlay
from .mounts import ContainerMount, mount_all, prepare_staging
from .process import ProcessConfig, exec_process
from .seccompcache import SeccompProgram, default_program
from .spec import BIND, TMPFS, VOLUME, ContainerSpec, PortSpec
from .volumes import fill_volume

__all__ = [
    "InitProcess",
    "PreparedRoot",
    "RootfsPlan",
    "abort_init",
    "add_port_forwards",
    "assign_host_ports",
    "enter_namespaces",
    "fork_init",
    "prepare_rootfs",
    "release_init",
    "to_mounts",
    "wait_network",
]

SLIRP_SOCKET = "slirp.sock"
GUEST_ADDRESS = "10.0.2.100"  # slirp4netns --configure's address for the namespace


@dataclass(frozen=True)
class RootfsPlan:
    lowers: tuple[Path, ...]  # init layer first, then the image's layers, topmost first
    upper: Path
    work: Path
    mounts: tuple[ContainerMount, ...]
    fill_volumes: tuple[tuple[str, Path], ...]  # (target, volume data) to fill from the image when empty


@dataclass(frozen=True)
class PreparedRoot:
    """Where the monitor mounts the root: a private tmpfs on `scratch` holding the overlay, the /etc files and a
    staging folder."""

    scratch: Path

    @property
    def merged(self) -> Path:
        return self.scratch / "root"

    @property
    def etc_dir(self) -> Path:
        return self.scratch / "etc"

    @property
    def staging(self) -> Path:
        return self.scratch / "staging"


@dataclass
class InitProcess:
    pid: int
    go_w: int
    error_r: int
    alive_w: int
    console: socket.socket | None


def _namespace_flags(network: str) -> int:
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID
    return flags if network == "host" else flags | sc.CLONE_NEWNET


def enter_namespaces(spec: ContainerSpec, directory: Path) -> SlirpHelper | None:
    """Move the calling monitor into the container's new namespaces (all but pid) and start its network, which
    comes up while the caller goes on (`wait_network`)."""
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
    flags = _namespace_flags(spec.network)
    private_mount_namespace(flags)
    if flags & sc.CLONE_NEWNET:
        sc.loopback_up()
    if slirp is not None:
        release_slirp(slirp, os.getpid())
    sc.sethostname(spec.hostname)
    return slirp


def assign_host_ports(ports: Sequence[PortSpec]) -> tuple[PortSpec, ...]:
    """The ports with a random host port (0) given one the host has free now, as the kernel picks an ephemeral port
    for a bind to port 0. Called in the host's network namespace, before the container's is made."""
    assigned = []
    for port in ports:
        if port.host_port == 0:
            kind = socket.SOCK_DGRAM if port.protocol == "udp" else socket.SOCK_STREAM
            with socket.socket(socket.AF_INET, kind) as probe:
                probe.bind((port.host_ip or "0.0.0.0", 0))
                port = replace(port, host_port=probe.getsockname()[1])
        assigned.append(port)
    return tuple(assigned)


def wait_network(slirp: SlirpHelper | None, ports: Sequence[PortSpec], directory: Path) -> None:
    """Wait until slirp4netns has configured the namespace, then publish the container's ports through it."""
    if slirp is None:
        return
    wait_slirp(slirp)
    if ports:
        add_port_forwards(directory, ports)


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


def _write_etc_files(directory: Path, spec: ContainerSpec) -> None:
    directory.mkdir()
    try:
        resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        resolv = ""
    contents = {
        "hosts": _hosts(spec),
        "hostname": spec.hostname + "\n",
        "resolv.conf": resolv_conf_for(resolv, spec.network),
    }
    for name, text in contents.items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o644)


def prepare_rootfs(plan: RootfsPlan, root: PreparedRoot, spec: ContainerSpec) -> None:
    """In the monitor's mount namespace: the overlay, the /etc files, and volumes filled from the image."""
    sc.mount("tmpfs", root.scratch, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=0700")
    root.merged.mkdir()
    mount_overlay(plan.lowers, root.merged, plan.upper, plan.work, flags=sc.MS_NODEV)
    _write_etc_files(root.etc_dir, spec)
    for target, data in plan.fill_volumes:
        fill_volume(root.merged, target, data)
    prepare_staging(root.staging)


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


def fork_init(
    root: PreparedRoot,
    mounts: Sequence[ContainerMount],
    spec: ContainerSpec,
    stdio: tuple[int, int, int],
    state_dir: Path,
) -> InitProcess:
    """Fork the container's PID 1 (the monitor unshared the pid namespace in enter_namespaces). It reads its seccomp
    filter (the store's compiled copy, in `state_dir`: from the host, never the image), then waits for
    `release_init`, which the monitor calls once the root is mounted (`abort_init` instead stops it). Its exec, or
    the error that stopped it, shows on the error pipe."""
    config = ProcessConfig(
        args=spec.args, env=spec.env, cwd=spec.cwd, user=spec.user, hostname=spec.hostname, tty=spec.tty, init=spec.init
    )
    go_r, go_w = os.pipe()
    error_r, error_w = os.pipe()
    alive_r, alive_w = os.pipe()
    console_parent, console_child = socket.socketpair() if spec.tty else (None, None)
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (go_w, error_r, alive_w):
                os.close(fd)
            if console_parent is not None:
                console_parent.close()
            for fd, target in zip(stdio, (0, 1, 2), strict=True):
                os.dup2(fd, target)
            seccomp = default_program(state_dir)
            if os.read(go_r, 1) != b"1":
                os._exit(0)  # the monitor gave up before the container could start
            os.close(go_r)
            _init(root, mounts, spec, config, seccomp, console_child, alive_r)
        except BaseException as exc:  # noqa: BLE001 - everything must reach the monitor
            os.write(error_w, wire.encode_error(exc))
        finally:
            os._exit(127)
    for fd in (go_r, error_w, alive_r):
        os.close(fd)
    if console_child is not None:
        console_child.close()
    return InitProcess(pid, go_w, error_r, alive_w, console_parent)


def release_init(init: InitProcess) -> int | None:
    """Let the container's first process go on; returns the pty master (terminal containers) once it has exec'd,
    and raises the error that stopped it."""
    try:
        os.write(init.go_w, b"1")
    except BrokenPipeError:
        pass  # it stopped on an error of its own, which the error pipe holds
    os.close(init.go_w)
    init.go_w = -1
    return _wait_started(init)


def abort_init(init: InitProcess) -> None:
    """Stop the container's first process before it runs anything, and reap it."""
    for fd in (init.go_w, init.alive_w):
        if fd >= 0:
            os.close(fd)
    init.go_w = init.alive_w = -1
    os.waitpid(init.pid, 0)


def _init(
    root: PreparedRoot,
    mounts: Sequence[ContainerMount],
    spec: ContainerSpec,
    config: ProcessConfig,
    seccomp: SeccompProgram,
    console: socket.socket | None,
    alive_r: int,
) -> None:
    sc.unshare(sc.CLONE_NEWNS)  # our own copy: descriptors opened from here on can be mount targets
    root_fd = mount_all(root.merged, root.etc_dir, mounts, root.staging)
    if spec.read_only:
        sc.mount(None, f"/proc/self/fd/{root_fd}", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_NODEV)
    os.fchdir(root_fd)
    os.close(root_fd)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
    exec_process(config, seccomp, console, alive_r)


def _wait_started(init: InitProcess) -> int | None:
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


def to_mounts(spec: ContainerSpec, volume_paths: dict[str, Path]) -> tuple[ContainerMount, ...]:
    mounts: list[ContainerMount] = []
    for mount in spec.mounts:
        if mount.kind == TMPFS:
            mounts.append(ContainerMount(TMPFS, mount.target, None, mount.readonly, mount.size_bytes, mount.mode))
        else:
            source = volume_paths[mount.source] if mount.kind == VOLUME else Path(mount.source)
            mounts.append(ContainerMount(BIND, mount.target, source, mount.readonly))
    return tuple(mounts)
