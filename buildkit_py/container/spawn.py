"""Forking a container's monitor (monitor.py) off the `pybuild` command that starts the container, as early as the
command can: before it opens the store, and before it imports anything the container needs. The monitor imports
that itself; `pybuild run` has it create the container too, so the command itself never loads the store.

No database connection may cross a fork, and closing one first would check the whole WAL into the database (the
last connection to close does): so the monitor is forked first and opens the store itself. One fork: the monitor
is the command's child until the command exits (which never waits for it: a monitor that ends first stays a zombie
only that long), then init's. It never opens a terminal, so it needs no second fork to keep from acquiring one.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session

__all__ = ["MonitorHandle", "fork_monitor", "take_early_monitor"]

# Imported before anything else by `pybuild run`, which forks its monitor first of all: nothing here may pull in
# more than the fork needs (the monitor imports the rest, while the command parses its arguments).


class MonitorHandle:
    """A forked monitor waiting to be told which container to start (`start`), or to create and start (`run`), in
    the store at `root` (None: the default one), or to exit (`close`). `start` and `run` return once the
    container's command runs: the session of the monitor's first client, attached as `hello` says (which streams,
    stdin, the terminal's size), and the container's id."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.root: Path | None = None

    def start(self, container_id: str, hello: dict[str, object]) -> tuple[Session, str]:
        from . import protocol as p  # lazy: after the fork, as in _order

        return self._order(p.START, {"container": container_id, "hello": hello})

    def run(
        self, image: str, name: str | None, options: dict[str, object], hello: dict[str, object]
    ) -> tuple[Session, str]:
        """Create the container (`options`: RunOptions' fields) and start it; StartFailed with code 125 when it
        cannot be created."""
        from . import protocol as p  # lazy: after the fork, as in _order

        return self._order(p.CREATE, {"image": image, "name": name, "options": options, "hello": hello})

    def close(self) -> None:
        self.sock.close()

    def _order(self, kind: int, document: dict[str, object]) -> tuple[Session, str]:
        # lazy: imported before the monitor fork, this module loads the protocol (json) only after it
        from . import protocol as p
        from .session import await_start

        document["root"] = None if self.root is None else os.fspath(self.root)
        try:
            self.sock.sendall(p.encode_json(kind, document))
        except OSError:
            pass  # it is gone: await_start says so
        return await_start(self.sock)


def fork_monitor(root: Path | None = None) -> MonitorHandle:
    """A new monitor, detached from this process (a new session, stdio on /dev/null), waiting for an order."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            ours.close()
            os.setsid()
            from .monitor import serve  # lazy: only the forked monitor loads the container runtime

            serve(theirs)
        except BaseException:  # noqa: BLE001 - a monitor never returns into the command that forked it
            status = 1
        finally:
            os._exit(status)
    theirs.close()
    handle = MonitorHandle(ours)
    handle.root = root
    return handle


_early: list[MonitorHandle] = []


def fork_early() -> None:
    """`pybuild run`'s first step, before its arguments are even parsed (cli/main.py)."""
    _early.append(fork_monitor())


def take_early_monitor() -> MonitorHandle | None:
    return _early.pop() if _early else None
