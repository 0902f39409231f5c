"""A fork server for sandboxes: one single-threaded Python process per executor that has already imported the
sandbox code, and forks a fresh child for each step. Starting Python for every step costs ~0.2 s; a fork costs ~1 ms.

Protocol over a unix socketpair: the client sends an 8-byte length, then the pickled request, with two file
descriptors attached (status pipe, output pipe), or three for a file request (and its progress pipe); the server
answers with the child's pid as 8 bytes. Requests are pickled in this direction only: the executor writes them, and
no sandboxed process ever holds the socket.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import Any, NoReturn

from ..dataclass_cache import save
from ..errors import ExecError

_HEADER = struct.Struct("!Q")
_FALLBACK_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # the server's PATH when its client has none
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SERVER_MAIN = f"import sys; from {__name__} import main; main(sys.argv)"


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def _child(request: Any, status_fd: int, output_fd: int, progress_fd: int | None) -> None:
    # lazy: only the server process loads the sandbox (serve did); the build process, its client, never does
    from . import sandbox

    os.setsid()
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sandbox.handle(request, status_fd, progress_fd)


def serve(sock: socket.socket) -> None:
    # Imported once here, so that every forked child has them already: after its pivot_root a step's init process
    # sees only the image, and must load nothing more from disk.
    from . import fileops, sandbox  # noqa: F401
    from .seccomp import prepare_default_filter

    try:
        prepare_default_filter()
    except ExecError:
        pass  # reported by each step that needs the filter, with the reason

    from . import syscalls as sc  # lazy: loaded with sandbox above, named here for the one call

    # A sandbox leaves its slirp4netns to stop on its own; orphaned, it is ours to reap in the loop below.
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        try:
            header, fds, _, _ = socket.recv_fds(sock, _HEADER.size, 3)
            if len(header) < _HEADER.size:
                header += _recv_exactly(sock, _HEADER.size - len(header))
            request = pickle.loads(_recv_exactly(sock, _HEADER.unpack(header)[0]))
        except (EOFError, ConnectionError):
            return
        if len(fds) not in (2, 3):
            for fd in fds:
                os.close(fd)
            continue
        status_fd, output_fd = fds[:2]
        progress_fd = fds[2] if len(fds) == 3 else None
        for fd in fds:  # received descriptors are inheritable: a step's processes must never hold them
            os.set_inheritable(fd, False)
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _child(request, status_fd, output_fd, progress_fd)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        sock.sendall(_HEADER.pack(pid))


class ForkServerClient:
    """The executor's side: starts the server on first use and hands it requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._forked: int | None = None

    def _connect(self) -> socket.socket:
        if self._socket is not None:
            return self._socket
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {
            "PATH": os.environ.get("PATH", _FALLBACK_PATH),
            "PYTHONPATH": os.pathsep.join(path for path in (_PACKAGE_PARENT, *sys.path) if path),
        }
        # -S: this process's path is given whole, so the server skips the site hooks (an editable install's finder
        # alone is 10 ms); and it starts without runpy. It is ready ~15 ms sooner, and a late change waits for it.
        self._process = subprocess.Popen(
            [sys.executable, "-S", "-c", _SERVER_MAIN, str(child_end.fileno())],
            pass_fds=(child_end.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        child_end.close()
        self._socket = parent_end
        return parent_end

    def start(self, request: Any, status_fd: int, output_fd: int, progress_fd: int | None = None) -> int:
        """Fork a sandbox for `request`; returns its pid. `progress_fd` goes only with a file request."""
        data = pickle.dumps(request)
        fds = [status_fd, output_fd] if progress_fd is None else [status_fd, output_fd, progress_fd]
        with self._lock:
            try:
                server = self._connect()
                socket.send_fds(server, [_HEADER.pack(len(data))], fds)
                server.sendall(data)
                pid: int = _HEADER.unpack(_recv_exactly(server, _HEADER.size))[0]
            except (OSError, EOFError) as error:
                raise ExecError(f"the sandbox fork server is gone: {error}") from error
        return pid

    def close(self) -> None:
        if self._socket is None:
            return
        self._socket.close()
        # it is blocked reading the socket we just closed, so it ends at once
        if self._process is not None:
            self._process.wait()
        elif self._forked is not None:
            os.waitpid(self._forked, 0)

    def start_now(self) -> None:
        """Start the server before the first request, so that its start-up overlaps the caller's own work."""
        with self._lock:
            self._connect()

    def fork_now(self) -> None:
        """Start the server as a fork of this process, which must have no other thread. The fork has most of the
        server's modules loaded already, so it is ready ~40 ms sooner than a new interpreter: a late change to a
        build's context no longer waits for it."""
        with self._lock:
            if self._socket is not None:
                return
            parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # else the fork would write what this process had buffered a second time
            pid = os.fork()
            if pid == 0:
                try:
                    parent_end.close()
                    _serve_forked(child_end)
                finally:
                    os._exit(1)
            child_end.close()
            self._forked = pid
            self._socket = parent_end


_prestarted: list[tuple[int, ForkServerClient]] = []


def prestart() -> None:
    """Start a fork server now for the executor this process will make next (a build starts one while it parses
    its Dockerfile: the server's own start-up, the sandbox's imports, then costs no time). A process with one
    thread forks it; any other starts a new interpreter, as forking a threaded process is unsafe."""
    client = ForkServerClient()
    if threading.active_count() == 1:
        client.fork_now()
    else:
        client.start_now()
    _prestarted.append((os.getpid(), client))


def _serve_forked(sock: socket.socket) -> NoReturn:
    """The server in a fork of its client: it keeps nothing of the client but its code. No object it inherited
    is ever finalized here (one would close a descriptor number that now names something else), it holds no
    descriptor but 0-2 and its socket, and its environment is the one a server started anew gets."""
    gc.freeze()
    keep = sock.fileno()
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) != keep:
            try:
                os.close(int(name))
            except OSError:
                pass  # the listing's own descriptor, gone already
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.setsid()
    search_path = os.environ.get("PATH", _FALLBACK_PATH)
    os.environ.clear()
    os.environ["PATH"] = search_path
    _serve_then_end(sock)


def take_prestarted() -> ForkServerClient:
    """The server `prestart` started in this process, or a new client that starts one on first use."""
    while _prestarted:
        pid, client = _prestarted.pop()
        if pid == os.getpid():
            return client
    return ForkServerClient()


def main(argv: list[str]) -> NoReturn:
    # No parent-death signal here: it would fire when the *thread* that started us ends. The server stops when its
    # socket closes instead, which happens when the executor closes it or its process dies.
    _serve_then_end(socket.socket(fileno=int(argv[1])))


def _serve_then_end(sock: socket.socket) -> NoReturn:
    """Serve until the client closes the socket, keep what `@dataclass` compiled, and end."""
    serve(sock)
    save()
    os._exit(0)  # nothing to flush or close: tearing the interpreter down would only keep the build waiting
