"""The client side of an attached session (`run` in the foreground, `start -a`, `attach`, `exec`): our stdin to the
container, its output to our stdout and stderr, until it exits or the user detaches with Ctrl-P Ctrl-Q.

With a terminal, ours is put in raw mode, so every key (Ctrl-C too) reaches the container's terminal, and its size
follows ours (SIGWINCH). Without one, `--sig-proxy` forwards the signals we receive (Ctrl-C's SIGINT) to the
container's process, as Docker does.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import sys
import termios
import tty as ttymodule
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import protocol as p
from .detachkeys import DEFAULT_DETACH_KEYS

__all__ = ["Endpoint", "relay", "terminal_size"]
_PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def terminal_size(fd: int = 0) -> list[int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return [rows, cols] if rows and cols else None


@dataclass
class Endpoint:
    """Where the session's bytes go: a monitor session (framed), or an exec's raw descriptors."""

    read_fds: list[int]  # what we select on for the container's output (the endpoint may shrink it)
    on_readable: Callable[[int], list[tuple[int, bytes]] | None]  # frames read from that fd, None at the end
    send_stdin: Callable[[bytes], None]
    close_stdin: Callable[[], None]
    send_signal: Callable[[int], None]
    send_resize: Callable[[list[int]], None]
    received: list[tuple[int, bytes]] = field(default_factory=list)  # frames already read, before any select


@contextmanager
def _raw_terminal(enabled: bool) -> Iterator[None]:
    if not enabled or not os.isatty(0):
        yield
        return
    saved = termios.tcgetattr(0)
    ttymodule.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


def _output(frames: list[tuple[int, bytes]]) -> tuple[bool, int | None]:
    """Write the container's output; (True, its exit code) once it has exited."""
    for kind, payload in frames:
        if kind == p.STDOUT:
            _write_all(1, payload)
        elif kind == p.STDERR:
            _write_all(2, payload)
        elif kind == p.EXIT:
            code = p.decode_json(payload).get("code")
            return True, code if isinstance(code, int) else None
    return False, None


def relay(
    endpoint: Endpoint, stdin: bool, tty: bool, sig_proxy: bool, detach_keys: bytes = DEFAULT_DETACH_KEYS
) -> int | None:
    """Run the session; the container's exit code, or None when we detached or the container went away."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    watched = list(_PROXIED) if sig_proxy and not tty else []
    if tty:
        watched.append(signal.SIGWINCH)
    previous_handlers = {number: signal.signal(number, lambda *_: None) for number in watched}
    previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    reading_stdin = stdin
    matched = 0
    try:
        with _raw_terminal(tty and stdin):
            if tty:
                size = terminal_size(0) or terminal_size(1)
                if size:
                    endpoint.send_resize(size)
            finished, code = _output(endpoint.received)
            if finished:
                return code
            while True:
                watch = [*endpoint.read_fds, wake_r] + ([0] if reading_stdin else [])
                ready, _, _ = select.select(watch, [], [])
                if wake_r in ready:
                    for number in os.read(wake_r, 512):
                        if number == signal.SIGWINCH:
                            size = terminal_size(0) or terminal_size(1)
                            if size:
                                endpoint.send_resize(size)
                        elif number in _PROXIED:
                            endpoint.send_signal(number)
                if 0 in ready and reading_stdin:
                    data = os.read(0, 65536)
                    if not data:
                        reading_stdin = False
                        endpoint.close_stdin()
                    else:
                        forward = bytearray()
                        for byte in data:
                            if byte == detach_keys[matched]:
                                matched += 1
                                if matched == len(detach_keys):
                                    if forward:
                                        endpoint.send_stdin(bytes(forward))
                                    return None
                                continue
                            if matched:
                                forward += detach_keys[:matched]
                                matched = 0
                            if byte == detach_keys[0]:
                                matched = 1
                                continue
                            forward.append(byte)
                        if forward:
                            endpoint.send_stdin(bytes(forward))
                for fd in [fd for fd in ready if fd in endpoint.read_fds]:
                    frames = endpoint.on_readable(fd)
                    if frames is None:
                        return None
                    finished, code = _output(frames)
                    if finished:
                        return code
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        os.close(wake_r)
        os.close(wake_w)
        sys.stdout.flush()
