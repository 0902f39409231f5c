"""`pause`/`unpause`: the container's freezer cgroup, and its record (running <-> paused, compare-and-swap)."""

from __future__ import annotations

from ..errors import ConflictError, ContainerError
from ..store import Store
from .cgroups import find_cgroup
from .lifecycle import find
from .procinfo import parent_of

__all__ = ["pause_container"]


def pause_container(store: Store, text: str, frozen: bool) -> None:
    row = find(store, text)
    if frozen and row.state == "paused":
        raise ContainerError(f"Container {row.container_id} is already paused")
    if not frozen and row.state != "paused":
        raise ContainerError(f"Container {row.container_id} is not paused")
    if row.state not in ("running", "paused") or row.pid <= 0 or parent_of(row.pid) != row.monitor_pid:
        raise ContainerError(f"Container {row.container_id} is not running")
    cgroup = find_cgroup(row.container_id, row.pid)
    cgroup.freeze(frozen)
    if frozen:
        cgroup.gather(row.pid)  # an `exec` that started while its processes were being gathered
    try:
        store.containers.transition(
            row.container_id, ("running",) if frozen else ("paused",), state="paused" if frozen else "running"
        )
    except ConflictError:
        cgroup.freeze(not frozen)
        raise
