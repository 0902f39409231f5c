"""`pybuild exec`: a new process in a running container's namespaces, hardened like its first one.

    pybuild exec (host namespaces; relays our terminal or stdio)
      └── helper: joins the container's cgroup, then its ipc, uts, net, pid and mount namespaces (setns), and waits
          └── the command: PID N of the container's pid namespace, in its root; process.exec_process
              (capabilities, seccomp, user, fds 0-2 only, a terminal in the container's devpts with -t)

The container's PID 1 is checked to be its monitor's child before its namespaces are opened, so a recycled pid
cannot send us into another process's namespaces.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import termios
from dataclasses import dataclass

from ..errors import ContainerError, ExecError
from ..exec import wire
from ..store import Store
from ..store.containers import ContainerRow
from . import protocol as p
from .attach import Endpoint, relay
from .cgroups import Cgroup, freezer_cgroup
from .detachkeys import DEFAULT_DETACH_KEYS
from .layout import init_layer_dir
from .process import ProcessConfig, exec_process, exit_code_of_error
from .procinfo import parent_of
from .seccompcache import SeccompProgram, default_program

__all__ = ["ExecOptions", "exec_in_container"]

_NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class ExecOptions:
    config: ProcessConfig
    interactive: bool = False
    detach: bool = False
    detach_keys: bytes = DEFAULT_DETACH_KEYS


def setns(fd: int) -> None:
    if _libc.setns(fd, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _open_namespaces(row: ContainerRow) -> list[int]:
    if row.pid <= 0 or parent_of(row.pid) != row.monitor_pid:
        raise ContainerError(f"Container {row.container_id} is not running")
    fds: list[int] = []
    try:
        for name in _NAMESPACES:
            fds.append(os.open(f"/proc/{row.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        for fd in fds:
            os.close(fd)
        raise ContainerError(f"Container {row.container_id} is not running") from None
    if parent_of(row.pid) != row.monitor_pid:  # still the monitor's child once the descriptors are held
        for fd in fds:
            os.close(fd)
        raise ContainerError(f"Container {row.container_id} is not running")
    return fds


def exec_in_container(store: Store, row: ContainerRow, options: ExecOptions) -> int:
    """Run the command in the container; its exit code (Docker's 126/127 when it cannot start)."""
    if row.state == "paused":
        raise ContainerError(f"Container {row.container_id} is paused, unpause the container before exec")
    if row.state != "running":
        raise ContainerError(f"Container {row.container_id} is not running")
    seccomp = default_program(init_layer_dir(store.root))  # before setns: from the host, never the container
    namespaces = _open_namespaces(row)
    cgroup = freezer_cgroup(row.container_id)
    tty = options.config.tty
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    ours: list[int] = []
    theirs: list[int] = []
    if options.detach or tty:
        stdio = (null, null, null)
    else:
        in_r, in_w = os.pipe() if options.interactive else (null, -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdio = (in_r, out_w, err_w)
        ours = [fd for fd in (in_w, out_r, err_r) if fd >= 0]
        theirs = [fd for fd in (in_r, out_w, err_w) if fd != null]
    console_ours, console_theirs = socket.socketpair() if tty and not options.detach else (None, None)
    error_r, error_w = os.pipe()
    store.close()
    helper = os.fork()
    if helper == 0:
        _helper(namespaces, cgroup, stdio, options, seccomp, console_theirs, error_w, ours, console_ours)
    for fd in (*namespaces, *theirs, error_w, null):
        os.close(fd)
    if console_theirs is not None:
        console_theirs.close()
    master = None
    if console_ours is not None:
        try:
            _, fds, _, _ = socket.recv_fds(console_ours, 16, 1)
        except OSError:
            fds = []
        console_ours.close()
        master = fds[0] if fds else None
    with os.fdopen(error_r, "rb") as errors:
        failure = errors.read(wire.MAX_ANSWER_BYTES + 1)
    if failure:
        for fd in ours + ([master] if master is not None else []):
            os.close(fd)
        os.waitpid(helper, 0)
        try:
            wire.decode_answer(failure)
        except ExecError as error:
            raise ExecFailed(str(error), exit_code_of_error(str(error))) from None
        raise ExecFailed("the exec'd process sent an answer that is not an error", 126)
    if options.detach:
        os.waitpid(helper, 0)
        return 0
    endpoint = _endpoint(helper, ours, master, options.interactive)
    code = relay(endpoint, options.interactive, tty, not tty, options.detach_keys)
    return 0 if code is None else code


class ExecFailed(ContainerError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _helper(
    namespaces: list[int],
    cgroup: Cgroup | None,
    stdio: tuple[int, int, int],
    options: ExecOptions,
    seccomp: SeccompProgram,
    console: socket.socket | None,
    error_w: int,
    ours: list[int],
    console_ours: socket.socket | None,
) -> None:
    status = 127
    try:
        for fd in ours:
            os.close(fd)
        if console_ours is not None:
            console_ours.close()
        if options.detach:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            for fd in (0, 1, 2):
                os.dup2(stdio[0], fd)  # /dev/null: the `exec -d` command returns, and its output is closed
        if cgroup is not None and cgroup.path.is_dir():
            try:
                cgroup.join()
            except OSError:
                pass
        for fd in namespaces:
            setns(fd)
            os.close(fd)
        child = os.fork()
        if child == 0:
            try:
                for fd, target in zip(stdio, (0, 1, 2), strict=True):
                    os.dup2(fd, target)
                exec_process(options.config, seccomp, console, None)
            except BaseException as exc:  # noqa: BLE001 - reported to the exec command
                os.write(error_w, wire.encode_error(exc))
            finally:
                os._exit(127)
        os.close(error_w)
        for fd in set(stdio):
            if fd > 2:
                os.close(fd)
        if console is not None:
            console.close()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _, wait_status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        status = 128 - code if code < 0 else code
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(error_w, wire.encode_error(exc))
        except OSError:
            pass
    finally:
        os._exit(status)


def _endpoint(helper: int, ours: list[int], master: int | None, interactive: bool) -> Endpoint:
    if master is not None:
        stdin_fd, outputs = (master if interactive else -1), {master: p.STDOUT}
    else:
        stdin_fd = ours[0] if interactive else -1
        out_fds = ours[1:] if interactive else ours
        outputs = {out_fds[0]: p.STDOUT, out_fds[1]: p.STDERR}
    read_fds = list(outputs)

    def finished() -> list[tuple[int, bytes]]:
        _, wait_status = os.waitpid(helper, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        return [(p.EXIT, json.dumps({"code": 128 - code if code < 0 else code}).encode())]

    def on_readable(fd: int) -> list[tuple[int, bytes]] | None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if data:
            return [(outputs[fd], data)]
        read_fds.remove(fd)
        os.close(fd)
        return finished() if not read_fds else []

    def send_stdin(data: bytes) -> None:
        if stdin_fd >= 0:
            try:
                os.write(stdin_fd, data)
            except OSError:
                pass

    def close_stdin() -> None:
        if stdin_fd >= 0 and master is None:
            os.close(stdin_fd)

    def send_signal(number: int) -> None:
        pass  # the command is in the container's pid namespace: Ctrl-C reaches it through its terminal

    def send_resize(size: list[int]) -> None:
        if master is not None:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))

    return Endpoint(read_fds, on_readable, send_stdin, close_stdin, send_signal, send_resize)
