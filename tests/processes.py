"""Watching a test's own processes: found through the process tree below a pid we started (never by a name that any
process on the machine could carry), held by pidfds so their exit is seen even after they are reparented."""

from __future__ import annotations

import os
import queue
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command name in parentheses may hold spaces and parentheses; the fields after it do not.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Every process below pid in the tree, now (a process reparented away from it is no longer below it)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def argv(pid: int) -> list[bytes]:
    try:
        return (Path("/proc", str(pid)) / "cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return []


def descendants_with_arg(pid: int, arg: str) -> list[int]:
    """The processes below pid that have arg as one of their arguments."""
    return [child for child in descendants(pid) if arg.encode() in argv(child)]


class Watched:
    """Processes held by pidfds: a pidfd names one process for good, so pid reuse cannot confuse the wait."""

    def __init__(self, pids: list[int]) -> None:
        self.fds: dict[int, int] = {}
        for pid in pids:
            try:
                self.fds[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                pass  # already gone

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def still_running_after(self, timeout: float) -> list[int]:
        """Wait up to timeout seconds for every watched process to exit; the pids of those that did not."""
        poller = select.poll()
        running = {fd: pid for pid, fd in self.fds.items()}
        for fd in running:
            poller.register(fd, select.POLLIN)
        deadline = timeout * 1000
        while running and deadline > 0:
            started = time.monotonic()
            for fd, _ in poller.poll(deadline):
                poller.unregister(fd)
                running.pop(fd, None)
            deadline -= (time.monotonic() - started) * 1000
        return sorted(running.values())


@contextmanager
def watched(pids: list[int]) -> Iterator[Watched]:
    handles = Watched(pids)
    try:
        yield handles
    finally:
        handles.close()


class LineReader:
    """The lines a child process writes, read by a thread so a test can wait for one with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, wanted: str, timeout: float) -> bool:
        """Whether a line whose last word is `wanted` came within timeout seconds (False at end of output too)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                return False
            if line is None:
                return False
            self.lines.append(line)
            if line.split()[-1:] == [wanted]:
                return True
        return False

    def rest(self, timeout: float) -> str:
        """Everything read so far and up to the end of the output (waiting up to timeout seconds for it)."""
        self._thread.join(timeout)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)
