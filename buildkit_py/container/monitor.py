"""The monitor: one small process per running container (like podman's conmon), and no daemon.

`spawn.fork_monitor` forks it off the `pybuild` command that starts the container: a new session, its stdio on
/dev/null, so it outlives that command (and a `kill -9` of it). Told which container to start, the monitor claims its record,
enters its namespaces, mounts its root (runtime.py), starts its PID 1, and then owns its stdio or terminal:

- every line of output goes to `<id>-json.log` (logs.py) and to the clients attached on its socket (protocol.py);
- clients send stdin, terminal sizes and signals (stop, kill, attach's proxied Ctrl-C) through it;
- when PID 1 exits it records the exit code and time in the store (the only place state lives), removes an
  `--rm` container, tells attached clients the exit code, and exits; every mount it made was in its own mount
  namespace, so nothing is left mounted.

The command that forked it is its first client: it gets STARTED, or FAILED with Docker's exit code (125, 126, 127).
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import signal
import socket
import struct
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BuildError, ConflictError, ContainerError, ContainerNotFound
from ..exec import syscalls as sc
from ..exec.mountns import release_foreign_overlays
from ..exec.network import SlirpHelper, stop_slirp
from ..store import Store
from ..store.containers import ContainerRow
from ..store.locking import owner_tag
from . import protocol as p
from .cgroups import Cgroup, freezer_cgroup
from .layout import ContainerLayout, init_layer_dir
from .logs import LogWriter
from .plan import rootfs_plan
from .process import exit_code_of_error
from .procinfo import start_time
from .runtime import (
    GUEST_ADDRESS,
    PreparedRoot,
    abort_init,
    assign_host_ports,
    enter_namespaces,
    fork_init,
    prepare_rootfs,
    release_init,
    wait_network,
)
from .spec import ContainerSpec, PortSpec, ports_to_json
from .udprelay import UdpRelay

__all__ = ["Monitor", "serve"]

_READ = 65536
_CLIENT_BUFFER_LIMIT = 16 << 20
_DRAIN_SECONDS = 2.0
RUNNING_STATES = ("running", "paused")


def serve(starter: socket.socket) -> None:
    """A forked monitor's life (spawn.py): wait on `starter` for START (or CREATE, then create the container), then
    start that container and watch it."""
    _detach_stdio()
    frame = p.read_frame(starter, p.FrameReader(), [])
    if frame is None or frame[0] not in (p.START, p.CREATE):
        return  # the command changed its mind (a bad image, a name taken)
    order = p.decode_json(frame[1])
    root = order.get("root")
    store = Store(Path(root) if isinstance(root, str) else None)  # a connection of its own
    hello = order.get("hello")
    container_id = order.get("container") if frame[0] == p.START else _create(store, order, starter)
    if not isinstance(container_id, str) or not isinstance(hello, dict):
        return
    layout = ContainerLayout(store.root, container_id)
    diagnostics = os.open(
        layout.directory / "monitor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
    )
    os.dup2(diagnostics, 2)
    os.close(diagnostics)
    Monitor(store, container_id, starter).run(hello)


def _create(store: Store, order: dict[str, object], starter: socket.socket) -> str | None:
    """`pybuild run`'s container, created here: its id, or None once the reason it cannot be is sent (125)."""
    # lazy: only `run` has the monitor create its container; a `start` never loads lifecycle or image.stored
    from .lifecycle import create_container
    from .options import RunOptions

    image, name, fields = order.get("image"), order.get("name"), order.get("options")
    try:
        if not isinstance(image, str) or not isinstance(name, str | None) or not isinstance(fields, dict):
            raise ContainerError("malformed message on the container's socket")
        row = create_container(store, image, RunOptions.from_fields(fields), name)
        if os.geteuid() != 0:
            raise ContainerError("running containers needs root (namespaces and overlay mounts)")
    except BuildError as error:
        try:
            starter.sendall(p.encode_json(p.FAILED, {"message": str(error), "code": 125}))
        except OSError:
            pass
        return None
    return row.container_id


def _detach_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(number, signal.SIG_IGN)


@dataclass
class _Client:
    sock: socket.socket
    reader: p.FrameReader = field(default_factory=p.FrameReader)
    ready: bool = False
    stdout: bool = False
    stderr: bool = False
    stdin: bool = False
    starter: bool = False
    outgoing: bytearray = field(default_factory=bytearray)


class Monitor:
    def __init__(self, store: Store, container_id: str, starter: socket.socket) -> None:
        self.container_id = container_id
        self.layout = ContainerLayout(store.root, container_id)
        self.store = store
        self.selector = selectors.DefaultSelector()
        self.clients: dict[int, _Client] = {}
        self.starter = _Client(starter, starter=True)
        self.init_pid = 0
        self.pidfd = -1
        self.alive_w = -1
        self.stdin_fd = -1  # our end of the container's stdin (pipe, or the pty master)
        self.outputs: dict[int, str] = {}  # fd -> stream name
        self.stdin_pending = bytearray()
        self.stdin_eof = False
        self.tty_master = -1
        self.cgroup: Cgroup | None = None
        self.log: LogWriter | None = None
        self.slirp: SlirpHelper | None = None
        self.scratch: Path | None = None
        self.ports: tuple[PortSpec, ...] = ()
        self.udp: UdpRelay | None = None  # published UDP ports (slirp4netns forwards the TCP ones)

    # -- lifetime --------------------------------------------------------------------------------------------

    def run(self, hello: dict[str, object]) -> None:
        row = self.store.containers.get(self.container_id)
        if row is None:
            return
        spec = ContainerSpec.from_json(row.spec)
        previous_state = row.state
        listener = self.layout.listen()  # before the record says running: a client that reads it can connect
        try:
            self.store.containers.transition(
                self.container_id,
                ("created", "exited"),
                state="running",
                pid=0,
                monitor_pid=os.getpid(),
                monitor_start=start_time(os.getpid()),
                started_at=time.time(),
                finished_at=0.0,
                exit_code=0,
                error="",
            )
        except (ConflictError, ContainerNotFound) as error:
            listener.close()
            self._send_now(self.starter, p.encode_json(p.FAILED, {"message": str(error), "code": 125}))
            return
        try:
            self._start(row, spec)
        except BaseException as error:  # noqa: BLE001 - every failure is reported and recorded
            listener.close()
            message = str(error) if isinstance(error, BuildError) else f"{type(error).__name__}: {error}"
            code = exit_code_of_error(message) if "exec:" in message or "executable" in message else 125
            self._fail(previous_state, spec, message, code)
            self._clean_up()
            return
        self.store.containers.transition(
            self.container_id, RUNNING_STATES, pid=self.init_pid, ports=ports_to_json(self.ports)
        )
        self._send_now(self.starter, p.encode_json(p.STARTED, {"pid": self.init_pid, "container": self.container_id}))
        self._add_client(self.starter, hello)
        status = self._loop(listener)
        if self.slirp is not None:
            stop_slirp(self.slirp, wait=False)  # it stops while the exit is recorded
        if self.udp is not None:
            self.udp.close()  # before the exit is told: whoever waited for it may bind the port next
        self._finish(spec, status)
        self._clean_up()

    def _start(self, row: ContainerRow, spec: ContainerSpec) -> None:
        """Everything up to the container's command running: slirp4netns is started first and waited for last."""
        plan = rootfs_plan(self.store, row, spec)
        published = spec.ports if spec.network == "default" else ()
        self.udp = UdpRelay.bind([port for port in published if port.protocol == "udp"], GUEST_ADDRESS)
        tcp = iter(assign_host_ports([port for port in published if port.protocol != "udp"]))
        udp = iter(self.udp.ports)
        self.ports = tuple(next(udp if port.protocol == "udp" else tcp) for port in published)
        self.slirp = enter_namespaces(spec, self.layout.directory)
        release_foreign_overlays(spec, plan, self.store.root, self.layout.directory)
        self.cgroup = freezer_cgroup(self.container_id)  # made by the first `pause` (cgroups.py)
        self.scratch = Path(tempfile.mkdtemp(prefix=f"rootfs-{owner_tag()}", dir=self.store.tmp_dir))
        root = PreparedRoot(self.scratch)
        null = os.open(os.devnull, os.O_RDWR)
        child_fds: list[int] = []
        if spec.tty:
            stdio = (null, null, null)
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if spec.open_stdin:
                in_r, in_w = os.pipe()
                self.stdin_fd = in_w
                child_fds.append(in_r)
            else:
                in_r = null
            stdio = (in_r, out_w, err_w)
            child_fds += [out_w, err_w]
            self.outputs = {out_r: "stdout", err_r: "stderr"}
        init = fork_init(root, plan.mounts, spec, stdio, init_layer_dir(self.layout.root))
        self.init_pid = init.pid
        self.alive_w = init.alive_w
        for fd in child_fds:
            os.close(fd)
        os.close(null)
        try:
            self.pidfd = os.pidfd_open(init.pid)
            prepare_rootfs(plan, root, spec)
            self.log = LogWriter(self.layout.log)
            wait_network(self.slirp, [port for port in self.ports if port.protocol != "udp"], self.layout.directory)
            master = release_init(init)
        except BaseException:
            abort_init(init)
            raise
        if master is not None:
            self.tty_master = master
            self.stdin_fd = master if spec.open_stdin else -1
            self.outputs = {master: "stdout"}

    def _clean_up(self) -> None:
        """What nobody waits for, done once the clients have their answer: the mounts (which would go with this
        process anyway; a detached unmount waits for an RCU grace period), the cgroup, slirp4netns."""
        if self.scratch is not None:
            try:
                sc.umount2(self.scratch, sc.MNT_DETACH)
            except OSError:
                pass
            try:
                self.scratch.rmdir()
            except OSError:
                pass
        if self.udp is not None:
            self.udp.close()
        if self.cgroup is not None and self.cgroup.path.is_dir():
            self.cgroup.remove()
        if self.slirp is not None:
            stop_slirp(self.slirp)

    def _fail(self, previous_state: str, spec: ContainerSpec, message: str, code: int) -> None:
        if self.log is not None:
            self.log.close()
        try:
            self.store.containers.transition(
                self.container_id,
                None,
                state=previous_state,
                pid=0,
                monitor_pid=0,
                monitor_start=0,
                exit_code=code,
                error=message,
            )
            if spec.auto_remove:
                from .lifecycle import remove_stopped  # lazy: only an --rm container needs lifecycle here (see _create)

                remove_stopped(self.store, self.container_id, volumes=True)
        except BuildError:
            pass
        self._send_now(self.starter, p.encode_json(p.FAILED, {"message": message, "code": code}))

    def _finish(self, spec: ContainerSpec, status: int) -> None:
        if self.log is not None:
            self.log.close()
        try:
            self.store.containers.transition(
                self.container_id,
                None,
                state="exited",
                pid=0,
                monitor_pid=0,
                monitor_start=0,
                ports="",
                exit_code=status,
                finished_at=time.time(),
            )
            if spec.auto_remove:
                from .lifecycle import remove_stopped  # lazy: only an --rm container needs lifecycle here (see _create)

                remove_stopped(self.store, self.container_id, volumes=True)
        except BuildError:
            pass
        exit_frame = p.encode_json(p.EXIT, {"code": status})
        for client in list(self.clients.values()):
            client.outgoing += exit_frame
            self._flush_blocking(client)

    # -- the loop ----------------------------------------------------------------------------------------------

    def _add_client(self, client: _Client, hello: dict[str, object]) -> None:
        client.ready = True
        client.stdout = bool(hello.get("stdout"))
        client.stderr = bool(hello.get("stderr"))
        client.stdin = bool(hello.get("stdin"))
        size = hello.get("size")
        if isinstance(size, list) and len(size) == 2:
            self._resize(size)
        client.sock.setblocking(False)
        self.clients[client.sock.fileno()] = client
        self.selector.register(client.sock, selectors.EVENT_READ, client)

    def _loop(self, listener: socket.socket) -> int:
        self.selector.register(listener, selectors.EVENT_READ, "listen")
        self.selector.register(self.pidfd, selectors.EVENT_READ, "exit")
        for fd in self.outputs:
            self.selector.register(fd, selectors.EVENT_READ, "io")
        if self.udp is not None:
            self.udp.register(self.selector)
        if self.tty_master >= 0:
            os.set_blocking(self.tty_master, False)
        if self.stdin_fd >= 0:
            os.set_blocking(self.stdin_fd, False)
            if self.stdin_pending or self.stdin_eof:
                self._want_stdin_write()
        status: int | None = None
        while status is None:
            for key, events in self.selector.select():
                if key.data == "listen":
                    self._accept(listener)
                elif key.data == "exit":
                    status = self._reap()
                elif key.data == "io":
                    if events & selectors.EVENT_WRITE:
                        self._write_stdin()
                    if events & selectors.EVENT_READ and key.fd in self.outputs:
                        self._read_output(key.fd)
                elif isinstance(key.data, UdpRelay):
                    key.data.readable(key.fd)
                elif isinstance(key.data, _Client):
                    if events & selectors.EVENT_READ:
                        self._read_client(key.data)
                    if events & selectors.EVENT_WRITE and key.data.sock.fileno() in self.clients:
                        self._flush(key.data)
        self.selector.unregister(listener)
        listener.close()
        self._drain_outputs()
        return status

    def _reap(self) -> int:
        _, wait_status = os.waitpid(self.init_pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        return 128 - code if code < 0 else code

    def _drain_outputs(self) -> None:
        deadline = time.monotonic() + _DRAIN_SECONDS
        while self.outputs and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=max(0.0, deadline - time.monotonic())):
                if key.data == "io" and key.fd in self.outputs:
                    self._read_output(key.fd)

    def _read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, _READ)
        except OSError as error:
            if error.errno != errno.EIO:  # a pty master reads EIO once no process holds its slave
                raise
            data = b""
        stream = self.outputs[fd]
        if not data:
            self.selector.unregister(fd)
            del self.outputs[fd]
            if fd != self.tty_master:
                os.close(fd)
            return
        if self.log is not None:
            self.log.write(stream, data)
        frame = p.encode(p.STDOUT if stream == "stdout" else p.STDERR, data)
        for client in list(self.clients.values()):
            if (stream == "stdout" and client.stdout) or (stream == "stderr" and client.stderr):
                client.outgoing += frame
                self._flush(client)

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        client = _Client(sock)
        sock.setblocking(False)
        self.clients[sock.fileno()] = client
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _read_client(self, client: _Client) -> None:
        try:
            data = client.sock.recv(_READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        try:
            frames = client.reader.feed(data)
        except BuildError:
            self._drop(client)
            return
        for kind, payload in frames:
            self._handle(client, kind, payload)

    def _handle(self, client: _Client, kind: int, payload: bytes) -> None:
        if kind == p.HELLO and not client.ready:
            try:
                hello = p.decode_json(payload)
            except BuildError:
                self._drop(client)
                return
            client.ready = True
            client.stdout = bool(hello.get("stdout"))
            client.stderr = bool(hello.get("stderr"))
            client.stdin = bool(hello.get("stdin"))
            size = hello.get("size")
            if isinstance(size, list) and len(size) == 2:
                self._resize(size)
        elif kind == p.STDIN and client.stdin and self.stdin_fd >= 0:
            self.stdin_pending += payload
            self._want_stdin_write()
        elif kind == p.STDIN_EOF and client.stdin and self.stdin_fd >= 0 and self.tty_master < 0:
            self.stdin_eof = True
            self._want_stdin_write()
        elif kind == p.RESIZE:
            try:
                size = p.decode_json(payload).get("size")
            except BuildError:
                return
            if isinstance(size, list) and len(size) == 2:
                self._resize(size)
        elif kind == p.SIGNAL:
            try:
                number = p.decode_json(payload).get("signal")
            except BuildError:
                return
            if isinstance(number, int) and 0 < number < 65:
                self._signal(number)

    def _signal(self, number: int) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, number)
        except ProcessLookupError:
            return
        if number == signal.SIGKILL and self.cgroup is not None and self.cgroup.path.is_dir():
            try:
                self.cgroup.freeze(False)  # a frozen process cannot die
            except (BuildError, OSError):
                pass

    def _resize(self, size: list[object]) -> None:
        if self.tty_master < 0:
            return
        rows, cols = size
        if isinstance(rows, int) and isinstance(cols, int) and 0 < rows < 65536 and 0 < cols < 65536:
            fcntl.ioctl(self.tty_master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _want_stdin_write(self) -> None:
        if self.stdin_fd < 0:
            return
        if self.stdin_fd == self.tty_master:
            if self.stdin_fd in self.outputs:
                self.selector.modify(self.stdin_fd, selectors.EVENT_READ | selectors.EVENT_WRITE, "io")
            return
        try:
            self.selector.register(self.stdin_fd, selectors.EVENT_WRITE, "io")
        except (KeyError, ValueError):
            pass

    def _write_stdin(self) -> None:
        if self.stdin_pending:
            try:
                written = os.write(self.stdin_fd, self.stdin_pending)
                del self.stdin_pending[:written]
            except BlockingIOError:
                return
            except OSError:
                self.stdin_pending.clear()
        if not self.stdin_pending:
            if self.stdin_fd == self.tty_master:
                if self.stdin_fd in self.outputs:
                    self.selector.modify(self.stdin_fd, selectors.EVENT_READ, "io")
            else:
                self.selector.unregister(self.stdin_fd)
                if self.stdin_eof:
                    os.close(self.stdin_fd)
                    self.stdin_fd = -1

    def _flush(self, client: _Client) -> None:
        try:
            while client.outgoing:
                sent = client.sock.send(client.outgoing)
                del client.outgoing[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(client)
            return
        if len(client.outgoing) > _CLIENT_BUFFER_LIMIT:
            self._drop(client)  # a client that stopped reading must not stop the container
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outgoing else 0)
        self.selector.modify(client.sock, events, client)

    def _flush_blocking(self, client: _Client) -> None:
        try:
            client.sock.setblocking(True)
            client.sock.settimeout(2.0)
            client.sock.sendall(client.outgoing)
        except OSError:
            pass
        self._drop(client)

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd in self.clients:
            del self.clients[fd]
            try:
                self.selector.unregister(client.sock)
            except (KeyError, ValueError):
                pass
        if client.starter and client.stdin and self.stdin_fd >= 0 and self.tty_master < 0:
            self.stdin_eof = True  # `run -i`: the container's stdin closes with its first client's (StdinOnce)
            self._want_stdin_write()
        client.sock.close()

    def _send_now(self, client: _Client, frame: bytes) -> None:
        try:
            client.sock.sendall(frame)
        except OSError:
            pass
