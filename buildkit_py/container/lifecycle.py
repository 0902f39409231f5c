"""Containers' lifecycle over the store's records: create, start, signal, stop, wait, remove, rename, prune.

No daemon holds state: every command reads the record, and talks to the container's monitor (monitor.py) through
its socket while it runs. A record that says "running" whose monitor is gone (killed, or the machine rebooted) is
noticed by `reconcile`, which every reader calls, and recorded as exited.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import BuildError, ConflictError, ContainerError, ContainerNotFound
from ..image.stored import image_config
from ..store import Store
from ..store.cachemounts import tree_size
from ..store.containers import ContainerRow
from . import protocol as p
from .cgroups import freezer_cgroup
from .layout import ContainerLayout
from .names import check_name, random_name
from .options import RunOptions, build_spec
from .procinfo import is_alive
from .session import Session, StartFailed
from .signals import parse_signal
from .spawn import MonitorHandle, fork_monitor
from .spec import BIND, VOLUME, ContainerSpec

__all__ = [
    "RUNNING_STATES",
    "Session",
    "StartFailed",
    "connect",
    "create_container",
    "find",
    "prune_containers",
    "reconcile",
    "remove_container",
    "remove_stopped",
    "rename_container",
    "signal_container",
    "start_container",
    "stop_container",
    "wait_container",
]

RUNNING_STATES = ("running", "paused")
STOPPED_STATES = ("created", "exited")


# -- reading records ---------------------------------------------------------------------------------------------


def reconcile(store: Store, row: ContainerRow) -> ContainerRow:
    """`row`, or, when it says running but its monitor is gone, the record after marking it exited."""
    if row.state not in RUNNING_STATES or is_alive(row.monitor_pid, row.monitor_start):
        return row
    try:
        row = store.containers.transition(
            row.container_id,
            RUNNING_STATES,
            state="exited",
            pid=0,
            monitor_pid=0,
            monitor_start=0,
            ports="",
            exit_code=137,
            finished_at=time.time(),
            error="the container's monitor process died",
        )
    except ConflictError:
        return store.containers.get(row.container_id) or row
    except ContainerNotFound:
        return row
    cgroup = freezer_cgroup(row.container_id)
    if cgroup is not None and cgroup.path.is_dir():
        cgroup.remove()
    if ContainerSpec.from_json(row.spec).auto_remove:
        try:
            remove_stopped(store, row.container_id, volumes=True)
        except BuildError:
            pass
    return row


def find(store: Store, text: str) -> ContainerRow:
    return reconcile(store, store.containers.find(text))


def all_containers(store: Store) -> list[ContainerRow]:
    return [reconcile(store, row) for row in store.containers.all()]


# -- create ------------------------------------------------------------------------------------------------------


def create_container(store: Store, image: str, options: RunOptions, name: str | None = None) -> ContainerRow:
    """Record a new container (not started): checks everything first, so a failure leaves nothing behind."""
    image_id, _ = store.lookup(image)
    config = image_config(store, image_id)
    container_id = os.urandom(32).hex()
    spec = build_spec(config.config, options, container_id)
    if name is not None:
        name = check_name(name)
    for mount in spec.mounts:
        if mount.kind == BIND and not os.path.lexists(mount.source):
            try:
                os.makedirs(mount.source, mode=0o755)  # Docker's -v makes a missing host folder (--mount does not)
            except OSError as error:
                raise ContainerError(f"error while creating mount source path '{mount.source}': {error}") from None
    layout = ContainerLayout(store.root, container_id)
    layout.make()
    made_volumes: list[str] = []
    try:
        volumes = []
        for mount in spec.mounts:
            if mount.kind == VOLUME:
                _, created = store.volumes.ensure(mount.source, anonymous=mount.anonymous)
                if created:
                    made_volumes.append(mount.source)
                volumes.append(mount.source)
        for attempt in range(10):
            row = ContainerRow(
                container_id=container_id,
                name=name or random_name(attempt),
                image_id=str(image_id),
                image_name=image,
                created=time.time(),
                spec=spec.to_json(),
                state="created",
            )
            try:
                store.containers.insert(row, volumes)
                return row
            except ConflictError:
                if name is not None or attempt == 9:
                    raise
        raise ContainerError("no free container name")  # pragma: no cover - the loop returns or raises
    except BaseException:
        layout.remove()
        for volume in made_volumes:
            try:
                store.volumes.remove(volume, force=True)
            except BuildError:
                pass
        raise


# -- start -------------------------------------------------------------------------------------------------------


def start_container(
    store: Store, row: ContainerRow, hello: dict[str, object], monitor: MonitorHandle | None = None
) -> Session:
    """Have a monitor start the container, and wait until its command runs (StartFailed when it cannot); returns the
    monitor's first client connection, attached as `hello` asks. `monitor` is one forked before `store` was opened
    (`fork_monitor`); without it one is forked now, after closing the store's database connection, which no fork
    may carry."""
    try:
        if os.geteuid() != 0:
            raise ContainerError("running containers needs root (namespaces and overlay mounts)")
        row = reconcile(store, row)
        if row.state in RUNNING_STATES:
            raise ConflictError(f"container {row.container_id[:12]} is already running")
    except BaseException:
        if monitor is not None:
            monitor.close()
        raise
    if monitor is None:
        store.close()
        monitor = fork_monitor(store.root)
    session, _ = monitor.start(row.container_id, hello)
    store.close()  # now, while the monitor has its own open: closing the last connection would checkpoint the WAL
    return session


# -- talking to a running container ---------------------------------------------------------------------------------


def connect(store: Store, row: ContainerRow, hello: dict[str, object]) -> Session | None:
    """A session with the running container's monitor, or None when it is not (or no longer) running. The monitor
    listens before its record says running, so a connection made while it is still starting the container waits
    in its backlog."""
    try:
        sock = ContainerLayout(store.root, row.container_id).connect()
    except OSError:
        return None
    session = Session(sock, p.FrameReader(), [])
    try:
        session.send(p.encode_json(p.HELLO, hello))
    except OSError:
        session.close()
        return None
    return session


def _not_running(row: ContainerRow) -> ContainerError:
    return ContainerError(f"Container {row.container_id} is not running")


def signal_container(store: Store, text: str, signal_text: str = "KILL") -> ContainerRow:
    number = parse_signal(signal_text)
    row = find(store, text)
    if row.state not in RUNNING_STATES:
        raise _not_running(row)
    session = connect(store, row, {})
    if session is None:
        raise _not_running(row)
    try:
        session.send(p.encode_json(p.SIGNAL, {"signal": number}))
    finally:
        session.close()
    return row


def _wait_exit(session: Session, timeout: float | None) -> int | None:
    """The exit code from the monitor, None on timeout or when it went away without one."""
    session.sock.settimeout(timeout)
    try:
        while True:
            frame = session.next_frame()
            if frame is None:
                return None
            if frame[0] == p.EXIT:
                code = p.decode_json(frame[1]).get("code")
                return code if isinstance(code, int) else None
    except TimeoutError:
        return None
    finally:
        session.sock.settimeout(None)


def stop_container(store: Store, text: str, timeout: int | None = None) -> ContainerRow:
    """The stop signal, then SIGKILL after `timeout` seconds (the container's --stop-timeout when None); a negative
    timeout waits for the process however long it takes, as Docker's does."""
    row = find(store, text)
    if row.state not in RUNNING_STATES:
        return row
    spec = ContainerSpec.from_json(row.spec)
    session = connect(store, row, {})
    if session is None:
        return reconcile(store, store.containers.get(row.container_id) or row)
    try:
        seconds = spec.stop_timeout if timeout is None else timeout
        if seconds != 0:
            session.send(p.encode_json(p.SIGNAL, {"signal": parse_signal(spec.stop_signal)}))
        if seconds < 0:
            _wait_exit(session, None)
        elif _wait_exit(session, float(seconds) if seconds > 0 else 0.001) is None:
            try:
                session.send(p.encode_json(p.SIGNAL, {"signal": 9}))
            except OSError:
                pass
            _wait_exit(session, None)
    finally:
        session.close()
    return _settled(store, row)


def _settled(store: Store, row: ContainerRow) -> ContainerRow:
    """The record once the monitor has written the exit (it does before it closes its clients)."""
    current = store.containers.get(row.container_id)
    if current is None:
        return row
    return reconcile(store, current)


def wait_container(store: Store, text: str) -> int:
    row = find(store, text)
    if row.state in RUNNING_STATES:
        session = connect(store, row, {})
        if session is not None:
            try:
                code = _wait_exit(session, None)
            finally:
                session.close()
            if code is not None:
                return code
        row = _settled(store, row)
    return row.exit_code


# -- remove, rename, prune ---------------------------------------------------------------------------------------


def remove_stopped(store: Store, container_id: str, volumes: bool = False) -> None:
    """Delete a stopped container: its record, its read-write layer and, with `volumes`, the volumes it mounted
    without naming them (`-v /path`, an image's VOLUME). As in Docker, a volume it mounted by name stays, even one
    `volume create` made without a name."""
    row = store.containers.get(container_id)
    mounts = ContainerSpec.from_json(row.spec).mounts if row is not None else ()
    unnamed = {mount.source for mount in mounts if mount.kind == VOLUME and mount.anonymous}
    used = store.containers.delete(container_id, STOPPED_STATES)
    ContainerLayout(store.root, container_id).remove()
    if volumes:
        for name in used:
            if name in unnamed:
                try:
                    store.volumes.remove(name)
                except BuildError:
                    pass


def remove_container(store: Store, text: str, force: bool = False, volumes: bool = False) -> ContainerRow:
    row = find(store, text)
    if row.state in RUNNING_STATES:
        if not force:
            raise ConflictError(
                f"You cannot remove a {row.state} container {row.container_id}. "
                "Stop the container before attempting removal or force remove"
            )
        session = connect(store, row, {})
        if session is not None:
            try:
                session.send(p.encode_json(p.SIGNAL, {"signal": 9}))
                _wait_exit(session, None)
            except OSError:
                pass
            finally:
                session.close()
        row = _settled(store, row)
        if store.containers.get(row.container_id) is None:
            return row  # an --rm container removed itself
    try:
        remove_stopped(store, row.container_id, volumes)
    except ContainerNotFound:
        pass
    return row


def rename_container(store: Store, text: str, new_name: str) -> None:
    row = find(store, text)
    name = check_name(new_name)
    if name == row.name:
        raise ContainerError("Renaming a container with the same name as its current name")
    store.containers.transition(row.container_id, None, name=name)


def prune_containers(store: Store) -> list[tuple[str, int]]:
    """Remove every stopped container; each removed one's id with the bytes of its read-write layer."""
    removed = []
    for row in all_containers(store):
        if row.state in STOPPED_STATES:
            size = tree_size(ContainerLayout(store.root, row.container_id).upper)
            try:
                remove_stopped(store, row.container_id)
                removed.append((row.container_id, size))
            except BuildError:
                pass
    return removed


def layout_of(store: Store, row: ContainerRow) -> ContainerLayout:
    return ContainerLayout(Path(store.root), row.container_id)
