"""What the executor asks of a sandbox: the requests the fork server hands to a freshly forked child.

Kept apart from sandbox.py, the child's side, so that the build process, which only writes requests, never loads
the sandbox's own code (its mounts, hardening, seccomp and network set-up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..solver.ops import FileAction
from .copycount import CopyCounter
from .executor import AnyMount, ProcessSpec, RootfsSpec, SourceTree

__all__ = ["ApplyActions", "FilesRequest", "RunRequest"]

ApplyActions = Callable[[Path, Mapping[str, Path], Sequence[FileAction], CopyCounter | None], None]


@dataclass(frozen=True)
class RunRequest:
    rootfs: RootfsSpec
    process: ProcessSpec
    mounts: tuple[AnyMount, ...]
    init_layer: Path
    scratch: Path  # an empty host folder; each sandbox mounts its own private tmpfs there
    parent_pid: int


@dataclass(frozen=True)
class FilesRequest:
    rootfs: RootfsSpec
    actions: tuple[FileAction, ...]
    sources: tuple[tuple[str, SourceTree], ...]
    scratch: Path
    parent_pid: int
    apply_actions: ApplyActions | None = None  # pickled by reference; None means buildkit_py.exec.fileops
