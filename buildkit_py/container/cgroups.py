"""One freezer cgroup per running container, for `pause`/`unpause` (and `commit --pause`).

cgroup v2 (a unified hierarchy at /sys/fs/cgroup): `pybuild/<id>` with `cgroup.freeze`. cgroup v1: the freezer
hierarchy's `pybuild/<id>` with `freezer.state`. The container's first process joins it before it runs anything, so
every process the container makes (and each `exec`) is in it. No cgroup is needed to run a container: where neither
kind is usable the container runs without one, and `pause` says why it cannot.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ContainerError

__all__ = ["Cgroup", "find_cgroup", "freezer_cgroup"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_FREEZE_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Cgroup:
    path: Path
    version: int

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def join(self, pid: int = 0) -> None:
        """Move `pid` (0: the caller) into the cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def freeze(self, frozen: bool) -> None:
        if self.version == 2:
            (self.path / "cgroup.freeze").write_text("1" if frozen else "0")
            want = f"frozen {1 if frozen else 0}"
            events = self.path / "cgroup.events"

            def check() -> bool:
                return want in events.read_text().splitlines()
        else:
            state = self.path / "freezer.state"
            state.write_text("FROZEN" if frozen else "THAWED")
            want = "FROZEN" if frozen else "THAWED"

            def check() -> bool:
                return state.read_text().strip() == want

        deadline = time.monotonic() + _FREEZE_WAIT_SECONDS
        while not check():
            if time.monotonic() > deadline:
                raise ContainerError(f"the container's cgroup {self.path} did not become {want!r}")
            time.sleep(0.005)

    def remove(self) -> None:
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)  # the last processes are still leaving


def _v2_usable() -> bool:
    return (_CGROUP_ROOT / "cgroup.controllers").exists()


def _v1_freezer() -> Path | None:
    freezer = _CGROUP_ROOT / "freezer"
    return freezer if (freezer / "freezer.state").exists() or (freezer / "cgroup.procs").exists() else None


def freezer_cgroup(container_id: str) -> Cgroup | None:
    """The cgroup a new container should run in, or None when this machine offers no usable freezer."""
    if os.geteuid() != 0:
        return None
    if _v2_usable():
        return Cgroup(_CGROUP_ROOT / "pybuild" / container_id, 2)
    freezer = _v1_freezer()
    if freezer is not None:
        return Cgroup(freezer / "pybuild" / container_id, 1)
    return None


def find_cgroup(container_id: str) -> Cgroup:
    """The running container's cgroup; ContainerError saying why pause cannot work when it has none."""
    cgroup = freezer_cgroup(container_id)
    if cgroup is None:
        raise ContainerError(
            "pause needs a cgroup freezer: neither a cgroup v2 hierarchy at /sys/fs/cgroup nor a v1 freezer "
            "hierarchy at /sys/fs/cgroup/freezer is usable on this machine"
        )
    if not cgroup.path.is_dir():
        raise ContainerError(f"the container has no freezer cgroup ({cgroup.path} is missing)")
    return cgroup
