"""Published UDP ports: a relay in the monitor, because slirp4netns cannot answer a client on the host's loopback.

slirp4netns runs with --disable-host-loopback (a container must not reach the host's 127.0.0.1), and that option also
drops the replies its UDP port forwards send to a client on 127.0.0.1: libslirp shows such a client to the container
as 10.0.2.2 and refuses to translate a datagram for 10.0.2.2 back. So, like Docker's userland proxy, the monitor binds
each published UDP port itself while it is still in the host's network namespace, and relays every client's datagrams
through a socket of its own in the container's namespace (one per client, so replies find their way back), sent to
the container's address. A client silent for IDLE_SECONDS loses its socket, as in Docker's proxy.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import ContainerError
from .spec import PortSpec

__all__ = ["UdpRelay"]

IDLE_SECONDS = 90.0
MAX_CLIENTS = 256  # per published port (each holds a descriptor of the monitor): the oldest goes first
_DATAGRAM = 65535


@dataclass
class _Flow:
    port: PortSpec
    outer: socket.socket  # the published port, in the host's namespace
    client: tuple[str, int]
    inner: socket.socket  # connected to the container's port, in its namespace
    last_used: float


class UdpRelay:
    def __init__(self, bound: Sequence[tuple[PortSpec, socket.socket]], guest_address: str) -> None:
        self.ports = tuple(port for port, _ in bound)
        self.guest_address = guest_address
        self._outer = {sock.fileno(): (port, sock) for port, sock in bound}
        self._flows: dict[tuple[int, tuple[str, int]], _Flow] = {}
        self._inner: dict[int, _Flow] = {}
        self._selector: selectors.BaseSelector | None = None

    @classmethod
    def bind(cls, ports: Sequence[PortSpec], guest_address: str) -> UdpRelay:
        """Bind each port on the host (a random one for host port 0); call it before leaving the host's namespace."""
        bound: list[tuple[PortSpec, socket.socket]] = []
        try:
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                bound.append((port, sock))
                try:
                    sock.bind((port.host_ip or "0.0.0.0", port.host_port))
                except OSError as error:
                    raise ContainerError(
                        f"driver failed programming external connectivity: cannot expose port {port}: "
                        f"bind {port.host_ip or '0.0.0.0'}:{port.host_port}/udp: {error.strerror}"
                    ) from None
                sock.setblocking(False)
                bound[-1] = (replace(port, host_port=sock.getsockname()[1]), sock)
        except BaseException:
            for _, sock in bound:
                sock.close()
            raise
        return cls(bound, guest_address)

    def register(self, selector: selectors.BaseSelector) -> None:
        """Wait on the published ports in the monitor's loop; their events carry this relay as data."""
        self._selector = selector
        for _, sock in self._outer.values():
            selector.register(sock, selectors.EVENT_READ, self)

    def readable(self, fd: int) -> None:
        """Relay the datagram waiting on `fd`: from a client to the container, or the container's answer back."""
        if fd in self._inner:
            flow = self._inner[fd]
            data = self._receive(flow.inner)
            if data is not None:
                flow.last_used = time.monotonic()
                try:
                    flow.outer.sendto(data, flow.client)
                except OSError:
                    pass  # UDP: a reply the host cannot take is lost, as on a network
            return
        port, outer = self._outer[fd]
        try:
            data, client = outer.recvfrom(_DATAGRAM)
        except OSError:
            return
        known = self._flows.get((fd, client))
        if known is None:
            self._forget_idle(fd)
            try:
                known = self._open(port, outer, client)
            except OSError:
                return  # the container's network is gone: the datagram is lost
        flow = known
        flow.last_used = time.monotonic()
        try:
            flow.inner.send(data)
        except OSError:
            pass  # nothing listens on the container's port yet: the datagram is lost, as Docker's would be

    def close(self) -> None:
        for flow in list(self._inner.values()):
            self._close_flow(flow)
        for _, sock in self._outer.values():
            if self._selector is not None:
                self._selector.unregister(sock)
            sock.close()
        self._outer.clear()

    def _forget_idle(self, fd: int) -> None:
        """Before a new client of port `fd`: close the sockets of clients silent for IDLE_SECONDS, and the oldest
        when the port has MAX_CLIENTS."""
        now = time.monotonic()
        for flow in [flow for flow in self._inner.values() if now - flow.last_used > IDLE_SECONDS]:
            self._close_flow(flow)
        clients = [flow for (outer_fd, _), flow in self._flows.items() if outer_fd == fd]
        if len(clients) >= MAX_CLIENTS:
            self._close_flow(min(clients, key=lambda flow: flow.last_used))

    def _close_flow(self, flow: _Flow) -> None:
        del self._inner[flow.inner.fileno()]
        del self._flows[(flow.outer.fileno(), flow.client)]
        if self._selector is not None:
            self._selector.unregister(flow.inner)
        flow.inner.close()

    def _open(self, port: PortSpec, outer: socket.socket, client: tuple[str, int]) -> _Flow:
        inner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            inner.setblocking(False)
            inner.connect((self.guest_address, port.container_port))
        except OSError:
            inner.close()
            raise
        flow = _Flow(port, outer, client, inner, time.monotonic())
        self._flows[(outer.fileno(), client)] = flow
        self._inner[inner.fileno()] = flow
        if self._selector is not None:
            self._selector.register(inner, selectors.EVENT_READ, self)
        return flow

    def _receive(self, sock: socket.socket) -> bytes | None:
        try:
            return sock.recv(_DATAGRAM)
        except OSError:
            return None  # nothing waiting, or ECONNREFUSED from an earlier datagram nobody took: nothing to relay
