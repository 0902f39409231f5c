"""Servers that misbehave on purpose, for the registry client's tests; each binds a loopback address on a free port
and is stopped by its context manager:

- `run_scripted(respond)`: an HTTP/1.1 server that answers every request with `respond(exchange)` and records what
  it received (method, path, headers, body); `exchange.drip()` sends an answer a byte at a time, for ever if asked,
  and `exchange.drain()` reads a request body slowly;
- `run_proxy(routes)`: an HTTP proxy, CONNECT tunnels and absolute-form forwarding for plain http, that reaches the
  names in `routes` (`"registry.invalid:5000" -> ("127.0.0.1", port)`: names no resolver knows, so a request that
  arrives proves it came through the proxy) and records every request line and header it was sent.
"""

from __future__ import annotations

import itertools
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"
OTHER_LOOPBACK = "127.0.0.2"  # another host on the same machine: another origin for the same-origin rules


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # with its query
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass
class ScriptedServer:
    host: str
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.netloc}{path}"


class Exchange:
    """One request to a scripted server, and the ways to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler, seen: Seen, stop: threading.Event) -> None:
        self._handler = handler
        self._stop = stop
        self.method = seen.method
        parts = urlsplit(seen.path)
        self.path = parts.path
        self.query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        self.headers = seen.headers
        self.body = seen.body

    def reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        handler = self._handler
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        try:
            handler.end_headers()
            if self.method != "HEAD":
                handler.wfile.write(body)
        except OSError:  # the client has given up
            handler.close_connection = True

    def drain(self, piece: int, interval: float) -> None:
        """Read the request body `piece` bytes every `interval` seconds, until its end or the server stops."""
        remaining = int(self.headers.get("content-length") or 0)
        while remaining > 0 and not self._stop.wait(interval):
            data = self._handler.rfile.read1(min(piece, remaining))  # type: ignore[attr-defined]
            if not data:
                return
            remaining -= len(data)

    def drip(self, data: Iterable[int], head: bytes = b"", interval: float = 0.1) -> None:
        """Send `head` at once, then `data` one byte every `interval` seconds, until it ends, the client hangs up or
        the server stops."""
        self._handler.close_connection = True
        try:
            self._handler.wfile.write(head)
            self._handler.wfile.flush()
        except OSError:
            return
        for byte in data:
            if self._stop.wait(interval):
                return
            try:
                self._handler.wfile.write(bytes([byte]))
                self._handler.wfile.flush()
            except OSError:
                return


Respond = Callable[[Exchange], None]


def endless(head: bytes, filler: bytes) -> Iterator[int]:
    """`head`, then `filler` over and over: an answer that never ends."""
    yield from head
    yield from itertools.cycle(filler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@contextmanager
def _serving(server: socketserver.BaseServer, stop: threading.Event) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def run_scripted(respond: Respond, host: str = LOOPBACK, read_bodies: bool = True) -> Iterator[ScriptedServer]:
    """With read_bodies=False, `respond` sees the request before its body, and may read it (slowly: `drain`)."""
    scripted = ScriptedServer(host)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length and read_bodies else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            seen = Seen(self.command, self.path, headers, body)
            scripted.seen.append(seen)
            respond(Exchange(self, seen, scripted.stop))

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server((host, 0), Handler)
    scripted.port = int(server.server_address[1])
    with _serving(server, scripted.stop):
        yield scripted


# -- a proxy ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxySeen:
    method: str
    target: str  # `host:port` for CONNECT, the absolute URL otherwise
    headers: Mapping[str, str]  # lower-case names


@dataclass
class Proxy:
    routes: Mapping[str, tuple[str, int]]
    port: int = 0
    seen: list[ProxySeen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _read_head(rfile: Any) -> list[str] | None:
    lines: list[str] = []
    while True:
        line = rfile.readline(65537)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line.decode("latin-1").rstrip("\r\n"))


@contextmanager
def run_proxy(routes: Mapping[str, tuple[str, int]]) -> Iterator[Proxy]:
    proxy = Proxy(routes)

    class Handler(socketserver.StreamRequestHandler):
        rbufsize = 0  # unbuffered: what follows the request head stays in the socket, for the pipe

        def handle(self) -> None:
            head = _read_head(self.rfile)
            if not head:
                return
            method, target, version = head[0].split(" ", 2)
            headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in head[1:])}
            proxy.seen.append(ProxySeen(method, target, headers))
            if method == "CONNECT":
                netloc, request = target, b""
            else:
                parts = urlsplit(target)
                netloc = parts.netloc if parts.port else f"{parts.hostname}:80"
                kept = [h for h in head[1:] if not h.lower().startswith(("proxy-", "connection:"))]
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                request = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode()
            address = proxy.routes.get(netloc)
            if address is None:
                self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            upstream = socket.create_connection(address)
            proxy._sockets.extend([upstream, self.connection])
            if method == "CONNECT":
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(request)
            sending = threading.Thread(target=_pipe, args=(self.connection, upstream), daemon=True)
            sending.start()
            _pipe(upstream, self.connection)
            sending.join(timeout=1)
            upstream.close()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        block_on_close = False
        allow_reuse_address = True

    server = Server((LOOPBACK, 0), Handler)
    proxy.port = int(server.server_address[1])
    try:
        with _serving(server, proxy.stop):
            yield proxy
    finally:
        for sock in proxy._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
