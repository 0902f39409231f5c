"""The default network of a step: its own network namespace, connected outward by slirp4netns.

slirp4netns is a user-mode TCP/IP stack: it runs on the host, holds a tap device inside the step's namespace, and
makes the step's outbound connections from the host's own sockets, so package mirrors and registries the host reaches
are reachable, while the host's loopback (which slirp would expose as 10.0.2.2) is switched off. Inside the namespace:
`tap0` 10.0.2.100/24, the gateway 10.0.2.2, a DNS forwarder at 10.0.2.3. slirp4netns runs sandboxed and seccomp-
filtered, and stops when the sandbox closes its exit pipe or dies.

The sandbox process starts it in two halves around its own unshare(CLONE_NEWNET): `prepare_slirp` forks a helper while
still in the host's network namespace; `release_slirp` lets it attach to the new namespace, and `wait_slirp` waits
until it is up, so that the caller can mount the step's root meanwhile.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import select
import shutil
import socket
import struct
from dataclasses import dataclass

from ..errors import ExecError
from . import syscalls as sc
from .mountns import private_mount_namespace

__all__ = [
    "DNS_FORWARDER",
    "HOST_GATEWAY",
    "SlirpHelper",
    "host_gateway",
    "prepare_slirp",
    "release_slirp",
    "resolv_conf_for",
    "slirp_binary",
    "stop_slirp",
    "wait_slirp",
]

DNS_FORWARDER = "10.0.2.3"
_READY_SECONDS = 10.0
_MTU = "65520"


def slirp_binary() -> str:
    binary = shutil.which("slirp4netns") or (
        "/usr/bin/slirp4netns" if os.access("/usr/bin/slirp4netns", os.X_OK) else None
    )
    if binary is None:
        raise ExecError(
            "the default network of RUN steps needs slirp4netns (apt-get install slirp4netns); "
            "or build with --network=none (no network) or --network=host (the host's network, not isolated)"
        )
    return binary


@dataclass
class SlirpHelper:
    """A forked helper waiting to exec slirp4netns: the pipes that start it, see it ready, and stop it."""

    pid: int
    go_w: int
    ready_r: int
    exit_w: int


def prepare_slirp(binary: str, extra_args: tuple[str, ...] = ()) -> SlirpHelper:
    """Fork the helper in the current (host) network namespace; it waits for `release_slirp` before it execs.
    `extra_args` go to slirp4netns before the target (a container's `--api-socket=PATH` for its port forwards)."""
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_w)
            os.close(ready_r)
            os.close(exit_w)
            target = os.read(go_r, 32).decode()
            if not target.isdigit():
                os._exit(0)
            # slirp4netns's --enable-sandbox unshares the mount namespace, makes "/" private but not what is mounted
            # beneath it, and detaches the old root after its pivot_root: an unmount that reaches the host through
            # every shared mount (Docker's /var/lib/docker, its containers' roots). In a namespace of ours whose
            # mounts are all private, what it detaches is only ours.
            private_mount_namespace()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            sc.close_on_exec_from(3)
            os.set_inheritable(ready_w, True)
            os.set_inheritable(exit_r, True)
            os.execv(
                binary,
                [
                    binary,
                    "--configure",
                    f"--mtu={_MTU}",
                    "--disable-host-loopback",
                    "--enable-sandbox",
                    "--enable-seccomp",
                    f"--ready-fd={ready_w}",
                    f"--exit-fd={exit_r}",
                    *extra_args,
                    target,
                    "tap0",
                ],
            )
        finally:
            os._exit(127)
    os.close(go_r)
    os.close(ready_w)
    os.close(exit_r)
    return SlirpHelper(pid, go_w, ready_r, exit_w)


def release_slirp(helper: SlirpHelper, target_pid: int) -> None:
    """Let the helper exec slirp4netns for `target_pid`'s network namespace; `wait_slirp` waits until it is up, so
    the caller may do other work while it starts."""
    os.write(helper.go_w, str(target_pid).encode())
    os.close(helper.go_w)


def wait_slirp(helper: SlirpHelper) -> None:
    readable, _, _ = select.select([helper.ready_r], [], [], _READY_SECONDS)
    ready = os.read(helper.ready_r, 1) if readable else b""
    os.close(helper.ready_r)
    if ready != b"1":
        raise ExecError("slirp4netns did not bring up the step's network (is /dev/net/tun available?)")


def stop_slirp(helper: SlirpHelper, wait: bool = True) -> None:
    """Close its exit pipe, which stops it; with `wait`, also reap it (a later call with `wait` reaps it)."""
    if helper.exit_w >= 0:
        os.close(helper.exit_w)
        helper.exit_w = -1
    if wait:
        try:
            os.waitpid(helper.pid, 0)
        except ChildProcessError:
            pass


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def resolv_conf_for(host_resolv_conf: str, network: str) -> str:
    """The step's resolv.conf: the host's, as Docker's builder copies it, except that under the default network a
    nameserver on the host's loopback, which the step cannot reach, gives way to slirp's DNS forwarder."""
    if network != "default":
        return host_resolv_conf
    lines: list[str] = []
    replaced = False
    for line in host_resolv_conf.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and _is_loopback(fields[1]):
            if not replaced:
                lines.append(f"nameserver {DNS_FORWARDER}")
                replaced = True
            continue
        lines.append(line)
    if not any(line.split()[:1] == ["nameserver"] for line in lines):
        lines.append(f"nameserver {DNS_FORWARDER}")
    return "\n".join(lines) + "\n"


HOST_GATEWAY = "host-gateway"
_SIOCGIFADDR = 0x8915


def host_gateway(address: str, network: str) -> str:
    """An `--add-host NAME:ADDRESS` address as a step should see it. `host-gateway` (Docker's word for "the host") is
    127.0.0.1 on the host's network; in the step's own namespaces it is the host's address on its default route,
    which the step reaches through slirp4netns (the host's loopback itself stays out of reach), and slirp's gateway
    10.0.2.2 when the host has no default route."""
    if address != HOST_GATEWAY:
        return address
    if network == "host":
        return "127.0.0.1"
    return _default_route_address() or "10.0.2.2"


def _default_route_address() -> str | None:
    try:
        with open("/proc/net/route") as routes:
            interface = next(
                (fields[0] for fields in (line.split() for line in routes) if fields[1:2] == ["00000000"]), None
            )
        if interface is None:
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            request = struct.pack("256s", interface.encode()[:15])
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
        return socket.inet_ntoa(answer[20:24])
    except (OSError, StopIteration):
        return None
