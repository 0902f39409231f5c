"""LinuxExecutor: each RUN step in fresh namespaces on an overlay of the layer snapshots (root only).

The caller is multi-threaded and must not fork Python itself, so every step spawns `python -m
buildkit_py.exec.sandbox` (see there for the process tree). This side streams the step's merged stdout+stderr and
reads the sandbox's verdict from a dedicated status pipe, which keeps "the command exited 2" apart from "the sandbox
could not start it" (an ExecError).
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ExecError
from ..solver.ops import FileAction
from .executor import Mount, OutputSink, ProcessSpec, RootfsSpec, SourceTree
from .initlayer import ensure_init_layer
from .sandbox import ApplyActions, FilesRequest, RunRequest, decode_error

__all__ = ["LinuxExecutor"]

_CHUNK = 65536
_TAIL_BYTES = 4096


class LinuxExecutor:
    """Runs processes with namespaces and overlayfs. `state_dir` must be on the snapshots' filesystem; it holds the
    init layer and an empty folder every sandbox mounts its private tmpfs on."""

    def __init__(self, state_dir: Path, apply_actions: ApplyActions | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.init_layer = ensure_init_layer(self.state_dir)
        self.scratch = self.state_dir / "sandbox"
        self.scratch.mkdir(mode=0o700, exist_ok=True)
        self._apply_actions = apply_actions  # None: buildkit_py.exec.fileops.apply_actions
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()

    def run(
        self,
        rootfs: RootfsSpec,
        process: ProcessSpec,
        mounts: Sequence[Mount] = (),
        output: OutputSink | None = None,
    ) -> int:
        request = RunRequest(rootfs, process, tuple(mounts), self.init_layer, self.scratch, os.getpid())
        kind, value = self._spawn(request, output)
        if kind != "exit" or not isinstance(value, int):
            raise ExecError(f"sandbox answered {kind!r} to a run request")
        return value

    def apply_file_actions(
        self,
        rootfs: RootfsSpec,
        actions: Sequence[FileAction],
        sources: Mapping[str, SourceTree],
    ) -> None:
        request = FilesRequest(
            rootfs, tuple(actions), tuple(sources.items()), self.scratch, os.getpid(), self._apply_actions
        )
        self._spawn(request, None)

    def kill_all(self) -> None:
        """SIGKILL every sandbox still running; their pid-1 children follow through the parent-death signal."""
        with self._lock:
            running = list(self._running)
        for proc in running:
            try:
                proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _spawn(self, request: RunRequest | FilesRequest, output: OutputSink | None) -> tuple[str, Any]:
        status_r, status_w = os.pipe()
        output_r, output_w = os.pipe()
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        }
        try:
            with self._lock:
                # Started in its own session so Ctrl-C reaches the caller only, which then calls kill_all.
                proc = subprocess.Popen(
                    [sys.executable, "-m", "buildkit_py.exec.sandbox", "--status-fd", str(status_w)],
                    stdin=subprocess.PIPE,
                    stdout=output_w,
                    stderr=output_w,
                    pass_fds=(status_w,),
                    start_new_session=True,
                    env=env,
                )
                self._running.add(proc)
        except BaseException:
            for fd in (status_r, status_w, output_r, output_w):
                os.close(fd)
            raise
        os.close(status_w)
        os.close(output_w)
        try:
            assert proc.stdin is not None
            try:
                proc.stdin.write(pickle.dumps(request))
                proc.stdin.close()
            except BrokenPipeError:
                pass  # it died already; the status pipe says why (or stays empty)
            status, tail = self._pump(output_r, status_r, output)
            returncode = proc.wait()
        finally:
            with self._lock:
                self._running.discard(proc)
            if proc.returncode is None:
                proc.kill()
                proc.wait()
            os.close(output_r)
            os.close(status_r)
        if not status:
            text = tail.decode(errors="replace").strip()
            if returncode < 0:
                reason = f"killed by signal {-returncode}"
            else:
                reason = f"exited with status {returncode}"
            raise ExecError(f"sandbox {reason} before reporting a result" + (f": {text}" if text else ""))
        kind, value = pickle.loads(status)
        if kind == "error":
            raise decode_error(value)
        return str(kind), value

    @staticmethod
    def _pump(output_fd: int, status_fd: int, output: OutputSink | None) -> tuple[bytes, bytes]:
        """Stream the output pipe to `output` until both pipes close; return the status bytes and the output tail."""
        status = bytearray()
        tail = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(output_fd, selectors.EVENT_READ)
            selector.register(status_fd, selectors.EVENT_READ)
            open_fds = 2
            while open_fds:
                for key, _ in selector.select():
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fd)
                        open_fds -= 1
                    elif key.fd == status_fd:
                        status += chunk
                    else:
                        if output is not None:
                            output(chunk)
                        tail = (tail + chunk)[-_TAIL_BYTES:]
        return bytes(status), bytes(tail)
