"""Progress renderers for `pybuild build`: plain lines (BuildKit style), a live view on a terminal, or nothing.

Both print whole lines only, each starting with its step's `#N`, under one lock: two steps that end together never
share a line. The terminal view keeps one line per running step at the bottom of the screen (its name, what it has
copied so far and its timer, which ticks while it runs), redrawn in place; everything above it is printed once.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from ..solver.progress import (
    BuildMessage,
    ProgressEvent,
    StepCached,
    StepDone,
    StepFailed,
    StepOutput,
    StepStarted,
    StepTransfer,
)
from .steplines import StepLines, clean_line

_PLAIN_TRANSFER_EVERY = 1.0  # seconds between two "copying" lines of one step in the plain log
_TICK = 0.2  # seconds between two redraws of the terminal view's running steps


def _sizeof(size: int) -> str:
    from tqdm import tqdm  # lazy: tqdm (76 modules) only for a terminal's bars

    return str(tqdm.format_sizeof(size, "B"))


def _name(name: str) -> str:
    """A step's name on one line, without colours: it comes from the Dockerfile."""
    return clean_line(name.replace("\n", " ").encode(), colours=False)


def _counts(files: int, size: int) -> str:
    return f"{files} file{'' if files == 1 else 's'}, {_sizeof(size)}"


@dataclass
class _Step:
    number: int
    name: str
    started: float = field(default_factory=time.monotonic)
    lines: StepLines = field(default_factory=StepLines)
    files: int = 0
    bytes: int = 0
    transferred: bool = False
    shown_transfer_at: float = 0.0


class PlainProgress:
    """`#5 [2/4] RUN make`, `#5 0.412 <output line>`, `#5 copying 12 files, 312MB`, `#5 DONE 1.2s`, `#6 CACHED`."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._steps: dict[int, _Step] = {}

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self.stream.write("".join(line + "\n" for line in self._lines(event)))
            self.stream.flush()

    def _step(self, number: int) -> _Step:
        return self._steps.setdefault(number, _Step(number, ""))

    def _lines(self, event: ProgressEvent) -> list[str]:
        if isinstance(event, StepStarted):
            self._steps[event.number] = _Step(event.number, _name(event.name))
            lines = [f"#{event.number} {_name(event.name)}"]
            if event.reason:
                lines.append(f"#{event.number} cache miss: {event.reason}")
            return lines
        if isinstance(event, StepCached):
            return [f"#{event.number} {_name(event.name)}", f"#{event.number} CACHED", ""]
        if isinstance(event, StepOutput):
            step = self._step(event.number)
            elapsed = time.monotonic() - step.started
            return [f"#{event.number} {elapsed:.3f} {line}" for line in step.lines.feed(event.data)]
        if isinstance(event, StepTransfer):
            step = self._step(event.number)
            step.files, step.bytes, step.transferred = event.files, event.bytes, True
            now = time.monotonic()
            if now - max(step.started, step.shown_transfer_at) < _PLAIN_TRANSFER_EVERY:
                return []  # a copy that is over within a second says only what it copied, at its end
            step.shown_transfer_at = now
            return [f"#{event.number} copying {_counts(event.files, event.bytes)}"]
        if isinstance(event, StepDone | StepFailed):
            ended = self._steps.pop(event.number, None) or _Step(event.number, event.name)
            lines = [f"#{event.number} {line}" for line in ended.lines.flush()]
            if ended.transferred:
                lines.append(f"#{event.number} copied {_counts(ended.files, ended.bytes)}")
            if isinstance(event, StepDone):
                lines.append(f"#{event.number} DONE {event.seconds:.1f}s")
            else:
                first = event.message.splitlines()[0] if event.message else ""
                lines.append(f"#{event.number} ERROR: {first}")
            return [*lines, ""]
        if isinstance(event, BuildMessage):
            return [event.text]
        return []


def _terminal_width(stream: IO[str]) -> int:
    try:
        return max(20, os.get_terminal_size(stream.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        return 80


class TtyProgress:
    """Lines above, and at the bottom one live line per running step, redrawn every `tick` seconds:
    `#3 [2/2] COPY data /data   14 files, 312MB  74.4MB/s  00:04`."""

    def __init__(self, stream: IO[str] | None = None, tick: float = _TICK) -> None:
        self.stream = stream or sys.stderr
        self.tick = tick
        self._lock = threading.Lock()
        self._running: dict[int, _Step] = {}
        self._drawn = 0  # live lines on the screen below the last printed line
        self._ticker: threading.Thread | None = None

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._draw(self._lines(event))
            if self._running and self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="pybuild-progress", daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        """Redraw while steps run, so that their timers move even when they print nothing."""
        while True:
            time.sleep(self.tick)
            with self._lock:
                if not self._running:
                    self._ticker = None
                    return
                self._draw([])

    def _lines(self, event: ProgressEvent) -> list[str]:
        if isinstance(event, StepStarted):
            step = self._running[event.number] = _Step(event.number, _name(event.name))
            return [f"#{event.number} {step.name}: cache miss: {event.reason}"] if event.reason else []
        if isinstance(event, StepCached):
            return [f"#{event.number} {_name(event.name)} CACHED"]
        if isinstance(event, StepOutput):
            running = self._running.get(event.number)
            splitter = running.lines if running is not None else StepLines()
            lines = splitter.feed(event.data) + ([] if running is not None else splitter.flush())
            return [f"#{event.number} {line}" for line in lines]
        if isinstance(event, StepTransfer):
            running = self._running.get(event.number)
            if running is not None:
                running.files, running.bytes, running.transferred = event.files, event.bytes, True
            return []
        if isinstance(event, StepDone | StepFailed):
            ended = self._running.pop(event.number, None) or _Step(event.number, _name(event.name))
            lines = [f"#{event.number} {line}" for line in ended.lines.flush()]
            copied = f" ({_counts(ended.files, ended.bytes)})" if ended.transferred else ""
            ending = f"DONE {event.seconds:.1f}s" if isinstance(event, StepDone) else "ERROR"
            return [*lines, f"#{event.number} {ended.name} {ending}{copied}"]
        if isinstance(event, BuildMessage):
            return [event.text]
        return []

    def _live(self, step: _Step, width: int, now: float) -> str:
        from tqdm import tqdm  # lazy: tqdm (76 modules) only for a terminal's bars

        elapsed = now - step.started
        moved = ""
        if step.transferred:
            rate = f"  {_sizeof(int(step.bytes / elapsed))}/s" if elapsed > 0 else ""
            moved = f"  {_counts(step.files, step.bytes)}{rate}"
        right = f"{moved}  {tqdm.format_interval(elapsed)}"
        left = f"#{step.number} {step.name}"
        room = width - 1 - len(right)
        if room < len(left):
            left = left[: max(room - 1, 0)] + "…"
        return left.ljust(max(room, 0)) + right

    def _draw(self, printed: list[str]) -> None:
        """Take the live lines away, print `printed` for good, and draw the live lines again beneath."""
        if not printed and not self._running and not self._drawn:
            return
        parts = [f"\x1b[{self._drawn}F" if self._drawn else "", "\x1b[J"]
        parts += [line + "\n" for line in printed]
        width, now = _terminal_width(self.stream), time.monotonic()
        live = [self._live(step, width, now)[: width - 1] for step in self._running.values()]
        parts += [line + "\n" for line in live]
        self._drawn = len(live)
        self.stream.write("".join(parts))
        self.stream.flush()


def quiet_progress(event: ProgressEvent) -> None:
    del event


def make_progress(mode: str, stream: IO[str] | None = None) -> Callable[[ProgressEvent], None]:
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "tty" if stream.isatty() else "plain"
    if mode == "tty":
        return TtyProgress(stream)
    if mode == "quiet":
        return quiet_progress
    return PlainProgress(stream)
