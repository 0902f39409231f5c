"""A client's connection to a container's monitor (protocol.py): the first one, made by the command that forked the
monitor, which waits for STARTED or FAILED; and those `attach`, `stop`, `wait` and the others make to its socket."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from ..errors import ContainerError
from . import protocol as p
from .attach import Endpoint

__all__ = ["Session", "StartFailed", "await_start"]


class StartFailed(ContainerError):
    """The container could not start; `code` is Docker's exit code for it (125, 126, 127)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Session:
    """A connection to a running container's monitor."""

    sock: socket.socket
    reader: p.FrameReader
    pending: list[tuple[int, bytes]]

    def next_frame(self) -> tuple[int, bytes] | None:
        return p.read_frame(self.sock, self.reader, self.pending)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def endpoint(self) -> Endpoint:
        """This session as attach.relay drives it."""

        def on_readable(fd: int) -> list[tuple[int, bytes]] | None:
            del fd
            frames, self.pending[:] = list(self.pending), []
            try:
                data = self.sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                return frames or None
            return frames + self.reader.feed(data)

        def quietly(frame: bytes) -> None:
            try:
                self.sock.sendall(frame)
            except OSError:
                pass

        received, self.pending[:] = list(self.pending), []  # output that came with STARTED
        return Endpoint(
            read_fds=[self.sock.fileno()],
            on_readable=on_readable,
            send_stdin=lambda data: quietly(p.encode(p.STDIN, data)),
            close_stdin=lambda: quietly(p.encode(p.STDIN_EOF)),
            send_signal=lambda number: quietly(p.encode_json(p.SIGNAL, {"signal": number})),
            send_resize=lambda size: quietly(p.encode_json(p.RESIZE, {"size": size})),
            received=received,
        )


def await_start(sock: socket.socket) -> tuple[Session, str]:
    """The session with a monitor that was told to start a container, and the container's id, once its command
    runs; StartFailed (closing the socket) when it cannot."""
    session = Session(sock, p.FrameReader(), [])
    try:
        frame = session.next_frame()
    except OSError:
        frame = None
    if frame is None:
        session.close()
        raise StartFailed("the container's monitor exited before starting the container", 125)
    kind, payload = frame
    if kind == p.FAILED:
        session.close()
        document = p.decode_json(payload)
        code = document.get("code")
        raise StartFailed(str(document.get("message", "")), code if isinstance(code, int) else 125)
    if kind != p.STARTED:
        session.close()
        raise StartFailed("the container's monitor answered out of turn", 125)
    container_id = p.decode_json(payload).get("container")
    return session, container_id if isinstance(container_id, str) else ""
