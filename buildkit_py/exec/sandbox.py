"""The child side of LinuxExecutor: forked by the fork server for each request, single-threaded, so it may fork.

Run mode:

    sandbox (host pid ns; new mount, uts, ipc, net ns; overlay mounted on a private tmpfs)
      ├── slirp4netns, for the default network (see network.py)
      └── pid 1 of a new pid ns: its own copy of the mount ns, proc/dev/sys/etc mounts with Docker's masks,
          pivot_root, user, capabilities, seccomp, every descriptor but 0-2 closed, then execve of the user's command

Files mode: a new mount ns only; the destination overlay and the sources are mounted, then `apply_actions` runs here,
counting files and bytes as it copies; the counts go to the executor as plain numbers (wire.encode_counts) on a
progress pipe that only a file request carries. No process of a step ever runs in a files-mode sandbox, and a run
request never holds a progress pipe.

Every mount lives in namespaces that die with these processes, so nothing is ever left mounted on the host. The
answer goes to the status fd as JSON (wire.py), written by this process after the step's processes are gone; they
never hold that descriptor.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import select
import signal
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExecError
from . import syscalls as sc
from . import wire
from .copycount import CopyCounter
from .executor import (
    INSECURE,
    AnyMount,
    Mount,
    OverlayMount,
    ProcessSpec,
    SecretFile,
    TmpfsMount,
)
from .hardening import harden_kernel_paths, mount_dev
from .lookpath import look_path
from .mountns import private_mount_namespace, release_foreign_overlays
from .mountsources import prepare_sources
from .network import prepare_slirp, release_slirp, resolv_conf_for, slirp_binary, stop_slirp, wait_slirp
from .overlay import mount_overlay
from .requests import ApplyActions, FilesRequest, RunRequest
from .rootpath import resolve_in_root
from .seccomp import prepare_default_filter
from .users import resolve_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# -- mounts -----------------------------------------------------------------------------------------------------


def _bind(source: Path | str, target: Path | str, readonly: bool = False) -> None:
    sc.mount(source, target, None, sc.MS_BIND | sc.MS_REC)
    if readonly:
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _private_scratch(flags: int, scratch: Path) -> None:
    """Enter new namespaces, stop mount propagation both ways, and mount a private tmpfs on `scratch`."""
    private_mount_namespace(flags)
    sc.mount("tmpfs", scratch, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=0700")


# -- run mode ---------------------------------------------------------------------------------------------------


def _etc_files(directory: Path, process: ProcessSpec) -> None:
    directory.mkdir()
    (directory / "hosts").write_text(
        f"127.0.0.1\tlocalhost {process.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        + "".join(f"{address}\t{name}\n" for name, address in process.extra_hosts)
    )
    (directory / "hostname").write_text(process.hostname + "\n")
    try:
        resolv = Path("/etc/resolv.conf").read_text()  # Docker's builder copies the host's, --network=none or not
    except OSError:
        resolv = ""
    (directory / "resolv.conf").write_text(resolv_conf_for(resolv, process.network))
    for name in ("hosts", "hostname", "resolv.conf"):
        (directory / name).chmod(0o644)


@dataclass(frozen=True)
class PlacedMount:
    """A mount, where its target resolved in the rootfs, and what to bind there when it is not mounted directly
    (a subpath of a tree, a secret file: see mountsources.py)."""

    mount: AnyMount
    target: Path
    source: Path | None = None

    @property
    def wants_file(self) -> bool:
        """Whether the target must be a file: for a bind of anything but a folder."""
        if isinstance(self.mount, SecretFile):
            return True
        if isinstance(self.mount, Mount):
            return not self.mount.source.is_dir()
        return self.source is not None and not self.source.is_dir()


def _create_missing(root: Path, target: Path, wants_file: bool) -> list[Path]:
    """Create `target` and its missing parents under `root` (a file when `wants_file`); return what was created."""
    missing = []
    probe = target
    while not os.path.lexists(probe) and probe != root:
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        if path == target and wants_file:
            path.touch(mode=0o644)
        else:
            path.mkdir(mode=0o755)
    return list(reversed(missing))


def _mount_stubs(
    merged: Path, mounts: Sequence[AnyMount], sources: Sequence[Path | None]
) -> tuple[list[PlacedMount], list[Path]]:
    """Resolve each mount's target in the rootfs and create what is missing (a file for a bind of a file or socket,
    else a folder); return the mounts with their place, parents first, and what was created.

    The rootfs is still the image's here (no step process has run), so resolving by path is safe."""
    placed: list[PlacedMount] = []
    created: list[Path] = []
    order = sorted(
        range(len(mounts)), key=lambda index: len([part for part in mounts[index].target.split("/") if part])
    )
    for index in order:
        mount = mounts[index]
        if isinstance(mount, Mount) and not os.path.lexists(mount.source):
            raise ExecError(f"mount source {mount.source} does not exist")
        place = PlacedMount(mount, resolve_in_root(merged, mount.target), sources[index])
        if not place.target.is_relative_to(merged / "dev"):  # /dev is a tmpfs of its own, made when mounted
            created += _create_missing(merged, place.target, place.wants_file)
        placed.append(place)
    return placed, created


def _remove_stub(root: Path, path: Path) -> None:
    """Remove the empty file or folder we created at `path` under `root`. The step has run since, and may have put
    symlinks anywhere on the way: walk directory descriptors without following any."""
    parts = path.relative_to(root).parts
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(parts[-1], dir_fd=fd)
        elif stat.S_ISREG(info.st_mode) and info.st_size == 0:
            os.unlink(parts[-1], dir_fd=fd)
    finally:
        os.close(fd)


def _remove_stubs(merged: Path, created: Sequence[Path]) -> None:
    for path in reversed(created):
        try:
            _remove_stub(merged, path)
        except OSError:
            pass  # no longer ours to remove: changed by the step, which is then what the layer records


def _bind_with_flags(source: Path, target: Path, flags: int) -> None:
    """A bind mount, then its own flags: mount(2) ignores them on the first call of a bind."""
    sc.mount(source, target, None, sc.MS_BIND | sc.MS_REC)
    if flags:
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | flags)


def _mount_one(mount: AnyMount, target: Path, empty: Path, nodev: int, source: Path | None = None) -> None:
    readonly = sc.MS_RDONLY if getattr(mount, "readonly", False) else 0
    if isinstance(mount, SecretFile) and source is not None:
        _bind_with_flags(source, target, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    elif isinstance(mount, OverlayMount) and source is not None:
        _bind_with_flags(source, target, nodev | (sc.MS_RDONLY if mount.upper is None else 0))
    elif isinstance(mount, Mount):
        _bind_with_flags(mount.source, target, nodev | readonly)
    elif isinstance(mount, OverlayMount) and mount.upper is None and len(mount.lowers) <= 1:
        # overlay needs two lowers
        _bind_with_flags(mount.lowers[0] if mount.lowers else empty, target, nodev | sc.MS_RDONLY)
    elif isinstance(mount, OverlayMount):
        mount_overlay(mount.lowers or (empty,), target, mount.upper, mount.work, flags=nodev)
    elif isinstance(mount, TmpfsMount):
        options = f"mode={mount.mode:o}" + (f",size={mount.size_bytes}" if mount.size_bytes else "")
        sc.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | nodev | readonly, options)
    else:  # pragma: no cover - AnyMount is a closed union
        raise ExecError(f"unknown mount {mount!r}")


def _mount_container_fs(
    merged: Path, etc_dir: Path, mounts: Sequence[PlacedMount], empty: Path, hardened: bool
) -> None:
    """Inside the new pid ns: proc, a minimal /dev, read-only sysfs, /etc files and the step's own mounts."""
    nosuid_nodev_noexec = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    sc.mount("proc", merged / "proc", "proc", nosuid_nodev_noexec)
    mount_dev(merged / "dev")
    sc.mount("sysfs", merged / "sys", "sysfs", sc.MS_RDONLY | nosuid_nodev_noexec)
    if hardened:
        harden_kernel_paths(merged)
    for name in ("hosts", "hostname", "resolv.conf"):
        sc.mount(etc_dir / name, merged / "etc" / name, None, sc.MS_BIND)
    nodev = sc.MS_NODEV if hardened else 0
    for place in mounts:
        # Resolved again, now that the mounts above it are in place: a target inside another mount (a cache, a
        # bind) is created there. Whatever a symlink there points to, this namespace is about to pivot away.
        target = resolve_in_root(merged, place.mount.target)
        _create_missing(merged, target, place.wants_file)
        _mount_one(place.mount, target, empty, nodev, place.source)


def _exec_user_process(process: ProcessSpec, parent_alive: int) -> None:
    """After pivot_root: user, capabilities, seccomp, cwd, environment, execve. Returns only by raising."""
    if not process.args:
        raise ExecError("no command given")
    user = resolve_user(Path("/"), process.user)
    cwd = process.cwd or "/"
    if not os.path.lexists(cwd):
        os.makedirs(cwd, mode=0o755, exist_ok=True)  # as BuildKit does; the frontend normally made it already

    insecure = process.security == INSECURE  # keeps every capability pybuild holds, and no seccomp filter
    if not insecure:
        sc.drop_bounding_set(sc.DOCKER_DEFAULT_CAPS)
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    if not insecure:
        prepare_default_filter().load()  # while CAP_SYS_ADMIN is still held: no no_new_privs needed, as in Docker
    os.setgroups(list(dict.fromkeys((user.gid, *user.additional_gids))))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if user.uid == 0 and not insecure:
        sc.capset(sc.DOCKER_DEFAULT_CAPS, sc.DOCKER_DEFAULT_CAPS, frozenset())
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise ExecError(f"cannot change to working directory {cwd}: {os.strerror(exc.errno or 0).lower()}") from exc

    env: dict[str, str] = {}
    for item in process.env:
        name, equals, value = item.partition("=")
        if equals:
            env[name] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", process.hostname)
    env.setdefault("HOME", user.home)
    executable = look_path(process.args[0], env["PATH"])

    os.umask(0o022)
    for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    # Set last: a change of uid or gid clears the parent-death signal.
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([parent_alive], [], [], 0)[0]:
        os._exit(137)  # the sandbox died before we could be tied to it
    sc.close_on_exec_from(3)  # the step's processes hold fds 0, 1 and 2, nothing else
    try:
        os.execve(executable, process.args, env)
    except OSError as exc:
        raise ExecError(f'exec: "{process.args[0]}": {os.strerror(exc.errno or 0).lower()}') from exc


def _container_init(
    request: RunRequest, merged: Path, etc_dir: Path, mounts: Sequence[PlacedMount], parent_alive: int
) -> None:
    sc.unshare(sc.CLONE_NEWNS)  # our own copy, so that pivot_root leaves the sandbox's root alone
    empty = request.scratch / "empty"
    _mount_container_fs(merged, etc_dir, mounts, empty, hardened=request.process.security != INSECURE)
    os.chdir(merged)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
    _exec_user_process(request.process, parent_alive)


def _namespace_flags(network: str) -> int:
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID
    if network in ("default", "none"):
        return flags | sc.CLONE_NEWNET
    if network == "host":
        return flags
    raise ExecError(f"unsupported network mode {network!r} (use default, none or host)")


def run(request: RunRequest) -> int:
    process = request.process
    flags = _namespace_flags(process.network)
    slirp = prepare_slirp(slirp_binary()) if process.network == "default" else None  # forked in the host's netns
    try:
        _private_scratch(flags, request.scratch)
        release_foreign_overlays(request)
        if flags & sc.CLONE_NEWNET:
            sc.loopback_up()
        if slirp is not None:
            release_slirp(slirp, os.getpid())  # it comes up while the root is mounted; waited for before the fork
        sc.sethostname(process.hostname)
        return _run_container(request, lambda: wait_slirp(slirp) if slirp is not None else None)
    finally:
        if slirp is not None:
            stop_slirp(slirp, wait=False)  # it ends on its own; the fork server, a subreaper, reaps it


def _run_container(request: RunRequest, network_ready: Callable[[], None]) -> int:
    merged = request.scratch / "rootfs"
    merged.mkdir()
    rootfs = request.rootfs
    nodev = sc.MS_NODEV if request.process.security != INSECURE else 0
    mount_overlay((request.init_layer, *rootfs.lowers), merged, rootfs.upper, rootfs.work, flags=nodev)
    etc_dir = request.scratch / "etc"
    _etc_files(etc_dir, request.process)
    empty = request.scratch / "empty"
    empty.mkdir(mode=0o755)
    sources = prepare_sources(
        request.scratch, request.mounts, lambda mount, folder: _mount_one(mount, folder, empty, nodev)
    )
    placed, created = _mount_stubs(merged, request.mounts, sources)

    network_ready()
    error_r, error_w = os.pipe()  # close-on-exec: EOF without data means execve succeeded
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(error_r)
            os.close(alive_w)
            _container_init(request, merged, etc_dir, placed, alive_r)
        except BaseException as exc:  # noqa: BLE001 - everything must reach the caller
            os.write(error_w, wire.encode_error(exc))
        finally:
            os._exit(127)
    os.close(error_w)
    os.close(alive_r)
    with os.fdopen(error_r, "rb") as errors:
        failure = errors.read(wire.MAX_ANSWER_BYTES + 1)
    _, wait_status = os.waitpid(pid, 0)
    os.close(alive_w)
    _remove_stubs(merged, created)
    if failure:
        wire.decode_answer(failure)  # raises the error the container's init reported before its execve
        raise ExecError("the step's init process sent an answer that is not an error")
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


# -- files mode -------------------------------------------------------------------------------------------------


def _load_apply_actions(request: FilesRequest) -> ApplyActions:
    if request.apply_actions is not None:
        return request.apply_actions
    module = importlib.import_module("buildkit_py.exec.fileops")
    apply: ApplyActions = module.apply_actions
    return apply


class _CountsPipe:
    """Writes counts to the progress pipe without ever waiting on it: a report the pipe has no room for is dropped
    (the next one carries the totals again), except the last, which is waited for."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    def report(self, files: int, size: int) -> None:
        try:
            os.write(self.fd, wire.encode_counts(files, size))
        except BlockingIOError:
            pass
        except BrokenPipeError:
            pass  # the executor stopped listening; the copy goes on

    def last(self, files: int, size: int) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        self.report(files, size)


def apply_files(request: FilesRequest, progress_fd: int | None = None) -> None:
    _private_scratch(sc.CLONE_NEWNS, request.scratch)
    release_foreign_overlays(request)
    empty = request.scratch / "empty"
    empty.mkdir(mode=0o755)
    dest = request.scratch / "dest"
    dest.mkdir()
    rootfs = request.rootfs
    mount_overlay(rootfs.lowers or (empty,), dest, rootfs.upper, rootfs.work)

    sources: dict[str, Path] = {}
    for index, (key, tree) in enumerate(request.sources):
        if tree.folder is not None:
            sources[key] = tree.folder
        elif not tree.lowers:
            sources[key] = empty
        else:
            target = request.scratch / f"source-{index}"
            target.mkdir()
            if len(tree.lowers) == 1:
                _bind(tree.lowers[0], target, readonly=True)
            else:
                mount_overlay(tree.lowers, target)
            sources[key] = target
    apply = _load_apply_actions(request)
    os.umask(0o022)
    pipe = _CountsPipe(progress_fd) if progress_fd is not None else None
    counter = CopyCounter(pipe.report) if pipe is not None else None
    apply(dest, sources, request.actions, counter)
    if pipe is not None and counter is not None:
        pipe.last(counter.files, counter.bytes)


# -- entry point ------------------------------------------------------------------------------------------------


def _report(status_fd: int, answer: bytes) -> None:
    view = memoryview(answer)
    while view:
        written = os.write(status_fd, view)
        view = view[written:]


def handle(request: RunRequest | FilesRequest, status_fd: int, progress_fd: int | None = None) -> None:
    """Carry out one request in this (fresh, single-threaded) process and report on `status_fd` (and, for a file
    request, its counts on `progress_fd`)."""
    if progress_fd is not None and not isinstance(request, FilesRequest):
        os.close(progress_fd)  # only a file request reports counts; a step's processes never see the pipe
        progress_fd = None
    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if isinstance(request, RunRequest):
            answer = wire.encode_exit(run(request))
        elif isinstance(request, FilesRequest):
            apply_files(request, progress_fd)
            answer = wire.encode_ok()
        else:
            raise ExecError(f"unknown sandbox request {type(request).__name__}")
    except BaseException as exc:  # noqa: BLE001 - report, never print a traceback into the step's output
        answer = wire.encode_error(exc)
    _report(status_fd, answer)
