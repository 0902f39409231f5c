"""The last steps of a container's process (its first one, or one `exec` adds), inside its namespaces and root.

The same hardening as a RUN step (exec/sandbox.py): Docker's capability bounding set, its seccomp profile, the
user's uid/gid/groups, fds 0-2 only. On top: a terminal made in the container's own devpts (its master goes to the
monitor, or the exec client, over a unix socket, as runc's console socket does), and `--init`, a small reaping init
written here that stays PID 1 and forwards signals to the command. Nothing is imported here after pivot_root: the
caller imported this module before it forked.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import termios
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExecError
from ..exec import syscalls as sc
from ..exec.lookpath import look_path
from ..exec.users import resolve_user
from ..image.config import DEFAULT_PATH
from .seccompcache import SeccompProgram

__all__ = ["ProcessConfig", "exec_process", "exit_code_of_error"]

_FORWARDED = tuple(
    sig
    for sig in signal.Signals
    if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU, signal.SIGTSTP)
)


@dataclass(frozen=True)
class ProcessConfig:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str
    hostname: str
    tty: bool = False
    init: bool = False


def exit_code_of_error(message: str) -> int:
    """Docker's exit code for a command that could not be started: 127 not found, 126 not runnable."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    return 126


def _make_terminal(console: socket.socket) -> None:
    """Open a pty in the container's devpts, send its master to the other side, make the slave our terminal."""
    master, slave = os.openpty()
    socket.send_fds(console, [b"pty"], [master])
    os.close(master)
    console.close()
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _environment(config: ProcessConfig, home: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.env:
        name, equals, value = item.partition("=")
        if equals:
            env[name] = value
    env.setdefault("PATH", DEFAULT_PATH)
    if config.hostname:
        env.setdefault("HOSTNAME", config.hostname)
    if config.tty:
        env.setdefault("TERM", "xterm")
    env.setdefault("HOME", home)
    return env


def exec_process(
    config: ProcessConfig, seccomp: SeccompProgram, console: socket.socket | None, parent_alive: int | None
) -> None:
    """Harden, switch user, and execve the command (or become its init first). Returns only by raising ExecError."""
    if not config.args:
        raise ExecError("no command specified")
    if console is not None:
        _make_terminal(console)
    user = resolve_user(Path("/"), config.user)
    cwd = config.cwd or "/"
    if not os.path.lexists(cwd):
        os.makedirs(cwd, mode=0o755, exist_ok=True)
    sc.drop_bounding_set(sc.DOCKER_DEFAULT_CAPS)
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    seccomp.load()
    os.setgroups(list(dict.fromkeys((user.gid, *user.additional_gids))))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if user.uid == 0:
        sc.capset(sc.DOCKER_DEFAULT_CAPS, sc.DOCKER_DEFAULT_CAPS, frozenset())
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise ExecError(
            f'chdir to cwd ("{cwd}") set in config.json failed: {os.strerror(exc.errno or 0).lower()}'
        ) from exc
    env = _environment(config, user.home)
    executable = look_path(config.args[0], env["PATH"])
    os.umask(0o022)
    for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    if parent_alive is not None:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)  # set last: a change of uid or gid clears it
        if select.select([parent_alive], [], [], 0)[0]:
            os._exit(137)  # the monitor died before we could be tied to it
    if config.init:
        _become_init(executable, config.args, env)
    sc.close_on_exec_from(3)
    try:
        os.execve(executable, config.args, env)
    except OSError as exc:
        raise ExecError(f'exec: "{config.args[0]}": {os.strerror(exc.errno or 0).lower()}') from exc


def _become_init(executable: str, args: tuple[str, ...], env: dict[str, str]) -> None:
    """`--init`: fork the command, forward every signal to it, reap every orphan, and exit as it exits."""
    child = os.fork()
    if child == 0:
        sc.close_on_exec_from(3)
        for sig in _FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        try:
            os.execve(executable, args, env)
        except OSError:
            os._exit(127)
    for fd in _open_fds():
        if fd > 2:
            try:
                os.close(fd)  # the error pipe among them: the command's exec is the caller's success
            except OSError:
                pass

    def forward(number: int, frame: object) -> None:
        del frame
        try:
            os.kill(child, number)
        except ProcessLookupError:
            pass

    for sig in _FORWARDED:
        try:
            signal.signal(sig, forward)
        except (OSError, ValueError):
            pass
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))
