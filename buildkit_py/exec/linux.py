"""LinuxExecutor: each RUN step in fresh namespaces on an overlay of the layer snapshots (root only).

The caller is multi-threaded and must not fork Python itself, so a fork server forks a sandbox for every step (see
sandbox.py for the process tree). This side streams the step's merged stdout+stderr and reads the sandbox's answer
(JSON, wire.py) from a dedicated status pipe, which keeps "the command exited 2" apart from "the sandbox could not
start it" (an ExecError). The step's own processes never hold that pipe. A file request (COPY, ADD) has a third pipe,
on which its sandbox reports the files and bytes it has copied so far, as plain numbers.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ExecError
from ..solver.ops import FileAction
from .copycount import CopyReport
from .executor import AnyMount, OutputSink, ProcessSpec, RootfsSpec, SourceTree
from .forkserver import take_prestarted
from .initlayer import ensure_init_layer
from .requests import ApplyActions, FilesRequest, RunRequest
from .wire import MAX_ANSWER_BYTES, CountsReader, SandboxAnswer, decode_answer

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
        self._running: set[int] = set()
        self._killed: set[int] = set()
        self._server = take_prestarted()

    def close(self) -> None:
        self._server.close()

    def run(
        self,
        rootfs: RootfsSpec,
        process: ProcessSpec,
        mounts: Sequence[AnyMount] = (),
        output: OutputSink | None = None,
    ) -> int:
        request = RunRequest(rootfs, process, tuple(mounts), self.init_layer, self.scratch, os.getpid())
        answer = self._spawn(request, output)
        if answer.kind != "exit":
            raise ExecError(f"sandbox answered {answer.kind!r} to a run request")
        return answer.status

    def apply_file_actions(
        self,
        rootfs: RootfsSpec,
        actions: Sequence[FileAction],
        sources: Mapping[str, SourceTree],
        progress: CopyReport | None = None,
    ) -> None:
        request = FilesRequest(
            rootfs, tuple(actions), tuple(sources.items()), self.scratch, os.getpid(), self._apply_actions
        )
        self._spawn(request, None, progress)

    def kill_all(self) -> None:
        """SIGKILL every sandbox still running; their pid-1 children follow through the parent-death signal."""
        with self._lock:
            running = list(self._running)
        for pid in running:
            self._killed.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _spawn(
        self, request: RunRequest | FilesRequest, output: OutputSink | None, progress: CopyReport | None = None
    ) -> SandboxAnswer:
        if os.geteuid() != 0:
            raise ExecError("running build steps needs root (namespaces and overlay mounts); rootless mode is planned")
        status_r, status_w = os.pipe()
        output_r, output_w = os.pipe()
        progress_r, progress_w = os.pipe() if progress is not None else (None, None)
        try:
            pid = self._server.start(request, status_w, output_w, progress_w)
        finally:
            os.close(status_w)
            os.close(output_w)
            if progress_w is not None:
                os.close(progress_w)
        with self._lock:
            self._running.add(pid)
        try:
            status, tail = self._pump(output_r, status_r, output, progress_r, progress)
        finally:
            with self._lock:
                self._running.discard(pid)
                killed = pid in self._killed
                self._killed.discard(pid)
            os.close(output_r)
            os.close(status_r)
            if progress_r is not None:
                os.close(progress_r)
        if not status:
            text = tail.decode(errors="replace").strip()
            reason = "killed by signal 9" if killed else "died"
            raise ExecError(f"sandbox {reason} before reporting a result" + (f": {text}" if text else ""))
        return decode_answer(status)

    @staticmethod
    def _pump(
        output_fd: int,
        status_fd: int,
        output: OutputSink | None,
        progress_fd: int | None = None,
        progress: CopyReport | None = None,
    ) -> tuple[bytes, bytes]:
        """Stream the output pipe to `output` and the counts to `progress` until every pipe closes; return the
        status bytes and the output tail."""
        status = bytearray()
        tail = bytearray()
        counts = CountsReader()
        with selectors.DefaultSelector() as selector:
            selector.register(output_fd, selectors.EVENT_READ)
            selector.register(status_fd, selectors.EVENT_READ)
            if progress_fd is not None:
                selector.register(progress_fd, selectors.EVENT_READ)
            open_fds = len(selector.get_map())
            while open_fds:
                for key, _ in selector.select():
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fd)
                        open_fds -= 1
                    elif key.fd == status_fd:
                        if len(status) <= MAX_ANSWER_BYTES:
                            status += chunk
                    elif key.fd == progress_fd:
                        latest = counts.feed(chunk)
                        if latest is not None and progress is not None:
                            progress(*latest)
                    else:
                        if output is not None:
                            output(chunk)
                        tail = (tail + chunk)[-_TAIL_BYTES:]
        return bytes(status), bytes(tail)
