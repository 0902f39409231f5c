"""Progress renderers for `pybuild build`: plain lines (BuildKit style), tqdm bars on a terminal, or nothing."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

from ..solver.progress import (
    BuildMessage,
    ProgressEvent,
    StepCached,
    StepDone,
    StepFailed,
    StepOutput,
    StepStarted,
)


class PlainProgress:
    """`#5 [2/4] RUN make`, `#5 0.412 <output line>`, `#5 DONE 1.2s`, `#6 CACHED`."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}
        self._partial: dict[int, bytes] = {}

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._render(event)
            self.stream.flush()

    def _render(self, event: ProgressEvent) -> None:
        write = self.stream.write
        if isinstance(event, StepStarted):
            self._started[event.number] = time.monotonic()
            write(f"#{event.number} {event.name}\n")
            if event.reason:
                write(f"#{event.number} cache miss: {event.reason}\n")
        elif isinstance(event, StepCached):
            write(f"#{event.number} {event.name}\n#{event.number} CACHED\n\n")
        elif isinstance(event, StepOutput):
            data = self._partial.pop(event.number, b"") + event.data
            *lines, rest = data.split(b"\n")
            elapsed = time.monotonic() - self._started.get(event.number, time.monotonic())
            for line in lines:
                write(f"#{event.number} {elapsed:.3f} {line.decode(errors='replace')}\n")
            if rest:
                self._partial[event.number] = rest
        elif isinstance(event, StepDone):
            self._flush_partial(event.number)
            write(f"#{event.number} DONE {event.seconds:.1f}s\n\n")
        elif isinstance(event, StepFailed):
            self._flush_partial(event.number)
            write(f"#{event.number} ERROR: {event.message.splitlines()[0] if event.message else ''}\n\n")
        elif isinstance(event, BuildMessage):
            write(f"{event.text}\n")

    def _flush_partial(self, number: int) -> None:
        rest = self._partial.pop(number, b"")
        if rest:
            self.stream.write(f"#{number} {rest.decode(errors='replace')}\n")


class TtyProgress:
    """A tqdm bar per running step; each collapses to one line when its step ends. Output is printed in full above."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._bars: dict[int, Any] = {}
        self._partial: dict[int, bytes] = {}

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._render(event)

    def _write(self, text: str) -> None:
        self._tqdm.write(text, file=self.stream)

    def _render(self, event: ProgressEvent) -> None:
        if isinstance(event, StepStarted):
            if event.reason:
                self._write(f"#{event.number} {event.name}: cache miss: {event.reason}")
            self._bars[event.number] = self._tqdm(
                desc=f"#{event.number} {event.name}"[:70],
                total=None,
                file=self.stream,
                bar_format="{desc} {elapsed}",
                leave=False,
            )
        elif isinstance(event, StepCached):
            self._write(f"#{event.number} {event.name} CACHED")
        elif isinstance(event, StepOutput):
            data = self._partial.pop(event.number, b"") + event.data
            *lines, rest = data.split(b"\n")
            for line in lines:
                self._write(f"#{event.number} {line.decode(errors='replace')}")
            if rest:
                self._partial[event.number] = rest
            bar = self._bars.get(event.number)
            if bar is not None:
                bar.update(0)
        elif isinstance(event, StepDone | StepFailed):
            rest = self._partial.pop(event.number, b"")
            if rest:
                self._write(f"#{event.number} {rest.decode(errors='replace')}")
            bar = self._bars.pop(event.number, None)
            if bar is not None:
                bar.close()
            if isinstance(event, StepDone):
                self._write(f"#{event.number} {event.name} DONE {event.seconds:.1f}s")
            else:
                self._write(f"#{event.number} {event.name} ERROR")
        elif isinstance(event, BuildMessage):
            self._write(event.text)


def quiet_progress(event: ProgressEvent) -> None:
    del event


def make_progress(mode: str, stream: IO[str] | None = None) -> Any:
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "tty" if stream.isatty() else "plain"
    if mode == "tty":
        return TtyProgress(stream)
    if mode == "quiet":
        return quiet_progress
    return PlainProgress(stream)
