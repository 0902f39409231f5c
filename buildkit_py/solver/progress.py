"""Progress events: what the solver tells its caller while it works. Renderers (plain, tty) live in the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..digest import Digest


@dataclass(frozen=True)
class StepStarted:
    number: int
    name: str
    op: Digest
    reason: str = ""


@dataclass(frozen=True)
class StepCached:
    number: int
    name: str
    op: Digest


@dataclass(frozen=True)
class StepOutput:
    number: int
    data: bytes


@dataclass(frozen=True)
class StepTransfer:
    """Files and bytes a step has copied so far (COPY, ADD), reported every so often while it copies."""

    number: int
    files: int
    bytes: int


@dataclass(frozen=True)
class StepDone:
    number: int
    name: str
    op: Digest
    seconds: float


@dataclass(frozen=True)
class StepFailed:
    number: int
    name: str
    op: Digest
    message: str


@dataclass(frozen=True)
class BuildMessage:
    """A line about the build as a whole (warnings, the image id, tags written)."""

    text: str


ProgressEvent = StepStarted | StepCached | StepOutput | StepTransfer | StepDone | StepFailed | BuildMessage
ProgressCallback = Callable[[ProgressEvent], None]


class StepSink:
    """What a running step reports, as events of its number: output bytes (call it), and copy counts."""

    def __init__(self, number: int, progress: ProgressCallback) -> None:
        self.number = number
        self.progress = progress

    def __call__(self, data: bytes) -> None:
        self.progress(StepOutput(self.number, data))

    def transferred(self, files: int, size: int) -> None:
        self.progress(StepTransfer(self.number, files, size))


def ignore_progress(event: ProgressEvent) -> None:
    del event
