"""The Executor boundary: run one process on a root filesystem made of layer snapshots, or apply file actions there.

Plain data in, exit status out. The Linux implementation (namespaces + overlayfs) lives in `linux.py`; a rootless one
can sit behind the same protocol later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..solver.ops import FileAction


@dataclass(frozen=True)
class RootfsSpec:
    """An overlay stack: `lowers` are snapshot folders, topmost first; changes land in `upper` (`work` is overlay's)."""

    lowers: tuple[Path, ...]
    upper: Path
    work: Path


SANDBOX = "sandbox"
INSECURE = "insecure"


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and how. `network`: "default" (own namespace, outbound through a user-mode stack), "none" (own
    namespace, loopback only) or "host"; `security`: SANDBOX (Docker's default hardening) or INSECURE (all
    capabilities, no seccomp, no masked paths: `RUN --security=insecure`)."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    hostname: str = "buildkitsandbox"
    network: str = "default"
    security: str = SANDBOX
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (name, address) lines appended to /etc/hosts (`--add-host`)


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host folder, file or socket into the sandbox."""

    source: Path
    target: str
    readonly: bool = True


@dataclass(frozen=True)
class OverlayMount:
    """Layer snapshots (topmost first; none for an empty tree) at `target`: read-only, or writable with the writes
    going to `upper` (and overlay's `work`), which the caller keeps or throws away. With `source_path`, only that
    path of the tree (resolved beneath it, symlinks included) appears at `target`."""

    lowers: tuple[Path, ...]
    target: str
    upper: Path | None = None
    work: Path | None = None
    source_path: str = ""


@dataclass(frozen=True)
class SecretFile:
    """A read-only file at `target` holding `data`, written by the sandbox on its private tmpfs: the bytes are
    never on a disk, and never in a repr."""

    target: str
    data: bytes = field(repr=False)
    mode: int = 0o400
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class TmpfsMount:
    """A fresh tmpfs at `target`, gone with the step."""

    target: str
    size_bytes: int | None = None
    mode: int = 0o1777
    readonly: bool = False


AnyMount = Mount | OverlayMount | TmpfsMount | SecretFile


@dataclass(frozen=True)
class SourceTree:
    """A tree file actions may read from: a plain folder (the build context), or read-only layer snapshots."""

    folder: Path | None = None
    lowers: tuple[Path, ...] = ()


OutputSink = Callable[[bytes], None]
CopyProgress = Callable[[int, int], None]  # (files, bytes) copied so far


class Executor(Protocol):
    def run(
        self,
        rootfs: RootfsSpec,
        process: ProcessSpec,
        mounts: Sequence[AnyMount] = (),
        output: OutputSink | None = None,
    ) -> int:
        """Run `process` to completion in its own namespaces; return its exit status (128+N when killed by N)."""
        ...

    def apply_file_actions(
        self,
        rootfs: RootfsSpec,
        actions: Sequence[FileAction],
        sources: Mapping[str, SourceTree],
        progress: CopyProgress | None = None,
    ) -> None:
        """Apply `actions` on the overlay `rootfs`; each CopyAction reads `sources[str(action.source)]`. `progress`
        hears the files and bytes copied so far, every so often while they are copied."""
        ...

    def kill_all(self) -> None:
        """Kill every process still running in a sandbox of this executor (the build failed or was interrupted)."""
        ...
