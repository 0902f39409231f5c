"""One freezer cgroup per paused container, for `pause`/`unpause` (and `commit --pause`).

cgroup v2 (a unified hierarchy at /sys/fs/cgroup): `pybuild/<id>` with `cgroup.freeze`. cgroup v1: the freezer
hierarchy's `pybuild/<id>` with `freezer.state`. It is made the first time the container is paused, not when it
starts: moving a process into a cgroup makes the kernel wait for an RCU grace period, as long as the rest of a
container's start, and most containers are never paused. `gather` moves every process of the container's pid
namespace in, pass after pass until a pass finds none left out (a process forked meanwhile is found by the next);
from then on the container's new processes, and each `exec`, are born in it. No cgroup is needed to run a
container: where neither kind is usable, `pause` says why it cannot.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ContainerError

__all__ = ["Cgroup", "find_cgroup", "freezer_cgroup", "pid_namespace_members"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_FREEZE_WAIT_SECONDS = 10.0
_GATHER_PASSES = 50


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

    def gather(self, init_pid: int) -> None:
        """Make the cgroup and move every process of the pid namespace `init_pid` leads into it; ContainerError when
        the container forks faster than its processes can be moved."""
        self.create()
        for _ in range(_GATHER_PASSES):
            outside = set(pid_namespace_members(init_pid)) - set(self.pids())
            if not outside:
                return
            for pid in sorted(outside):
                try:
                    self.join(pid)
                except (ProcessLookupError, OSError):
                    pass  # gone meanwhile
        raise ContainerError("the container's processes keep forking: they could not all be moved to its cgroup")

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


def pid_namespace_members(init_pid: int) -> list[int]:
    """The host pids of every process in the pid namespace whose init is `init_pid` (none when it is gone)."""
    try:
        namespace = os.stat(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            found = os.stat(f"/proc/{entry.name}/ns/pid")
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (namespace.st_dev, namespace.st_ino):
            members.append(int(entry.name))
    return members


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


def find_cgroup(container_id: str, init_pid: int) -> Cgroup:
    """The running container's cgroup, made and filled with its processes (PID 1 `init_pid`, as the host sees it)
    if this is its first pause; ContainerError saying why pause cannot work when the machine has no freezer."""
    cgroup = freezer_cgroup(container_id)
    if cgroup is None:
        raise ContainerError(
            "pause needs a cgroup freezer: neither a cgroup v2 hierarchy at /sys/fs/cgroup nor a v1 freezer "
            "hierarchy at /sys/fs/cgroup/freezer is usable on this machine"
        )
    try:
        cgroup.gather(init_pid)
    except OSError as error:
        raise ContainerError(f"cannot use the container's freezer cgroup {cgroup.path}: {error.strerror}") from None
    return cgroup
