"""Docker's default seccomp filter for containers, compiled once and kept in the store.

Compiling the profile with libseccomp costs more CPU than the rest of a container's start (several milliseconds to
build the rule database, and as many again to turn it into BPF at load time, in every container). The compiled
program is the same every time for one libseccomp and one rule set, so it is kept under
`<root>/containers/state/seccomp-<identity>.bpf`, named by both, and loaded with one prctl. The file is the store's
own, written by root like the layers the container's root is made of, and read back only as a BPF program of the
right shape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExecError
from ..exec.seccomp import check_bpf, default_filter_identity, load_bpf, prepare_default_filter

__all__ = ["SeccompProgram", "default_program"]


@dataclass(frozen=True)
class SeccompProgram:
    """A compiled filter, loaded into the calling process by `load` (inherited across fork and execve)."""

    bpf: bytes

    def load(self) -> None:
        load_bpf(self.bpf)


def default_program(state_dir: Path) -> SeccompProgram:
    """Docker's default filter, from the store's compiled copy, compiled (and kept) when there is none yet."""
    path = state_dir / f"seccomp-{default_filter_identity()}.bpf"
    try:
        bpf = path.read_bytes()
        check_bpf(bpf)
        return SeccompProgram(bpf)
    except (OSError, ExecError):
        pass  # none yet, or damaged: compiled again
    bpf = prepare_default_filter().export_bpf()
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(bpf)
    os.replace(temporary, path)
    return SeccompProgram(bpf)
