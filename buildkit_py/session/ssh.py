"""SSH agents for `RUN --mount=type=ssh` (`pybuild build --ssh default[=SOCKET|KEY[,KEY...]]`).

Each id names an agent: a socket (by default `$SSH_AUTH_SOCK`), or key files, which get a private `ssh-agent`
started for the build and stopped after it. A step never sees the agent's own socket: each ssh mount gets a socket
of its own (`AgentForwarder`), owned and moded as the mount asks, whose connections pybuild relays to the agent.
As BuildKit's forwarder does, the relay is read-only: a step may list keys and ask for signatures, and any other
request (adding, removing, locking keys) is answered with a failure without reaching the agent.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from ..errors import SessionError

__all__ = ["AgentForwarder", "SshAgents", "SshSource", "parse_ssh"]

_REQUEST_IDENTITIES = 11  # SSH2_AGENTC_REQUEST_IDENTITIES
_SIGN_REQUEST = 13  # SSH2_AGENTC_SIGN_REQUEST
_READ_ONLY_REQUESTS = frozenset({_REQUEST_IDENTITIES, _SIGN_REQUEST})
_FAILURE = struct.pack("!IB", 1, 5)  # SSH_AGENT_FAILURE
_MAX_MESSAGE = 256 * 1024  # what OpenSSH's agent accepts
_AGENT_START_SECONDS = 10.0


@dataclass(frozen=True)
class SshSource:
    """The agent `id` stands for: one socket, or key files; none means `$SSH_AUTH_SOCK`."""

    id: str = "default"
    paths: tuple[str, ...] = ()


def parse_ssh(text: str) -> SshSource:
    """One `--ssh` value: `default`, `default=/path/to/socket`, `github=~/.ssh/id_ed25519,~/.ssh/id_rsa`."""
    ssh_id, equals, value = text.partition("=")
    paths = tuple(path for path in value.split(",") if path) if equals else ()
    return SshSource(id=ssh_id or "default", paths=paths)


class SshAgents:
    """The agents of a build, by id; a context manager that starts the private agents key files need."""

    def __init__(self, sources: Iterable[SshSource] = (), environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._sources: dict[str, SshSource] = {}
        for source in sources:
            if source.id in self._sources:
                raise SessionError(f'duplicate agent ID "{source.id}"')
            self._sources[source.id] = source
        self._sockets: dict[str, str] = {}
        self._private: list[tuple[subprocess.Popen[bytes], Path]] = []

    def ids(self) -> frozenset[str]:
        return frozenset(self._sources)

    def socket(self, ssh_id: str) -> str | None:
        """The agent socket for `ssh_id`, or None when the build was given no such agent."""
        return self._sockets.get(ssh_id)

    def __enter__(self) -> Self:
        try:
            for source in self._sources.values():
                self._sockets[source.id] = self._agent_socket(source)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for agent, directory in self._private:
            agent.terminate()
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
            shutil.rmtree(directory, ignore_errors=True)
        self._private.clear()
        self._sockets.clear()

    def _agent_socket(self, source: SshSource) -> str:
        paths = source.paths or (self._environ.get("SSH_AUTH_SOCK", ""),)
        if paths == ("",):
            raise SessionError(f'ssh agent "{source.id}": invalid empty ssh agent socket: SSH_AUTH_SOCK is not set')
        sockets: list[str] = []
        keys: list[str] = []
        for path in paths:
            expanded = os.path.expanduser(path)
            try:
                mode = os.stat(expanded).st_mode
            except OSError as error:
                raise SessionError(f'ssh agent "{source.id}": {path}: {(error.strerror or "").lower()}') from None
            (sockets if stat.S_ISSOCK(mode) else keys).append(expanded)
        if sockets and (keys or len(sockets) > 1):
            raise SessionError(f'ssh agent "{source.id}": only single socket allowed, and not with key files')
        if sockets:
            return sockets[0]
        return self._start_private_agent(source.id, keys)

    def _start_private_agent(self, ssh_id: str, keys: list[str]) -> str:
        program, adder = shutil.which("ssh-agent"), shutil.which("ssh-add")
        if program is None or adder is None:
            raise SessionError(f'ssh agent "{ssh_id}": key files need ssh-agent and ssh-add (openssh-client)')
        directory = Path(tempfile.mkdtemp(prefix="pybuild-ssh-agent-"))
        path = directory / "agent.sock"
        # With setpriv (util-linux), a pybuild killed with SIGKILL leaves no agent holding the keys behind.
        setpriv = shutil.which("setpriv")
        tied = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        agent = subprocess.Popen(
            [*tied, program, "-D", "-a", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._private.append((agent, directory))
        deadline = time.monotonic() + _AGENT_START_SECONDS
        while not path.exists():
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SessionError(f'ssh agent "{ssh_id}": ssh-agent did not start')
            time.sleep(0.01)
        environ = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "SSH_ASKPASS")}
        added = subprocess.run(
            [adder, "-q", *keys],
            env={**environ, "SSH_AUTH_SOCK": str(path), "SSH_ASKPASS_REQUIRE": "never"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if added.returncode != 0:
            reason = added.stderr.decode(errors="replace").strip() or f"exit status {added.returncode}"
            raise SessionError(f'ssh agent "{ssh_id}": cannot load {", ".join(keys)}: {reason}')
        return str(path)


class AgentForwarder:
    """A socket of our own at `path` (owned `uid`:`gid`, `mode`), relaying read-only agent requests to `agent`."""

    def __init__(self, agent: str, mode: int = 0o600, uid: int = 0, gid: int = 0) -> None:
        self.agent = agent
        self._directory = Path(tempfile.mkdtemp(prefix="pybuild-ssh-"))
        self.path = self._directory / "agent.sock"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        os.chown(self.path, uid, gid)
        os.chmod(self.path, mode)
        self._listener.listen(16)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="ssh-forward", daemon=True)
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections = list(self._connections)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(): a close alone would not
        except OSError:
            pass
        self._listener.close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        shutil.rmtree(self._directory, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    client.close()
                    return
                self._connections.add(client)
            threading.Thread(target=self._serve, args=(client,), name="ssh-forward-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            while True:
                request = _read_message(client)
                if request is None:
                    return
                if not request or request[0] not in _READ_ONLY_REQUESTS:
                    client.sendall(_FAILURE)
                    continue
                if upstream is None:
                    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    upstream.connect(self.agent)
                    with self._lock:
                        self._connections.add(upstream)
                upstream.sendall(struct.pack("!I", len(request)) + request)
                answer = _read_message(upstream)
                if answer is None:
                    return
                client.sendall(struct.pack("!I", len(answer)) + answer)
        except OSError:
            return
        finally:
            for connection in (client, upstream):
                if connection is not None:
                    with self._lock:
                        self._connections.discard(connection)
                    connection.close()


def _read_message(connection: socket.socket) -> bytes | None:
    """One length-prefixed agent message, or None at the end of the stream or for an oversized one."""
    header = _read_exactly(connection, 4)
    if header is None:
        return None
    (length,) = struct.unpack("!I", header)
    if length > _MAX_MESSAGE:
        return None
    return _read_exactly(connection, length)


def _read_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)
