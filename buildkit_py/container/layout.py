"""Where a container's files live under the store root.

<root>/containers/<id>/upper        the read-write layer (overlay upper dir), kept across stop/start
<root>/containers/<id>/work         overlay's work dir
<root>/containers/<id>/<id>-json.log   the log, in Docker's json-file format
<root>/containers/<id>/attach.sock  the monitor's socket (reached through /proc/self/fd: paths may be long)

The monitor mounts the container's root in its own mount namespace, on a folder of the store's temp space named
after it (`<root>/tmp/rootfs-@<pid>...`), so that removing the container never waits for that mount to go.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ContainerLayout", "init_layer_dir"]


def init_layer_dir(root: Path) -> Path:
    return root / "containers" / "state"


@dataclass(frozen=True)
class ContainerLayout:
    root: Path
    container_id: str

    @property
    def directory(self) -> Path:
        return self.root / "containers" / self.container_id

    @property
    def upper(self) -> Path:
        return self.directory / "upper"

    @property
    def work(self) -> Path:
        return self.directory / "work"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.container_id}-json.log"

    SOCKET = "attach.sock"

    def make(self) -> None:
        self.directory.mkdir(parents=True, mode=0o700)
        for path in (self.upper, self.work):
            path.mkdir(mode=0o755)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def connect(self) -> socket.socket:
        """A connection to the monitor's socket; OSError (ENOENT, ECONNREFUSED) when no monitor listens."""
        fd = os.open(self.directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                client.connect(f"/proc/self/fd/{fd}/{self.SOCKET}")
            except OSError:
                client.close()
                raise
            return client
        finally:
            os.close(fd)

    def listen(self) -> socket.socket:
        fd = os.open(self.directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                os.unlink(self.SOCKET, dir_fd=fd)
            except FileNotFoundError:
                pass
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(f"/proc/self/fd/{fd}/{self.SOCKET}")
            server.listen(64)
            return server
        finally:
            os.close(fd)
