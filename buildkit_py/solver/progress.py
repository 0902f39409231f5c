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


ProgressEvent = StepStarted | StepCached | StepOutput | StepDone | StepFailed | BuildMessage
ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    del event
