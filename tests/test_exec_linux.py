"""LinuxExecutor with real namespaces and real overlays, on a busybox root made at test time. Needs root."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from processes import descendants, descendants_with_arg, watched

from buildkit_py.digest import digest_bytes
from buildkit_py.errors import ContextError, ExecError
from buildkit_py.exec.executor import Executor, Mount, OverlayMount, ProcessSpec, RootfsSpec, SourceTree, TmpfsMount
from buildkit_py.exec.initlayer import INIT_DIRS, INIT_FILES
from buildkit_py.exec.linux import LinuxExecutor
from buildkit_py.exec.users import UserNotFound
from buildkit_py.solver.ops import CopyAction, FileAction, MkdirAction

BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh",
    "cat",
    "echo",
    "id",
    "sleep",
    "hostname",
    "ls",
    "touch",
    "rm",
    "mkdir",
    "ip",
    "grep",
    "env",
    "kill",
    "true",
)


@dataclass
class Sandbox:
    executor: LinuxExecutor
    lower: Path
    upper: Path
    work: Path
    tmp: Path

    @property
    def rootfs(self) -> RootfsSpec:
        return RootfsSpec((self.lower,), self.upper, self.work)

    def run(self, script: str, **process: object) -> tuple[int, str]:
        chunks: list[bytes] = []
        status = self.executor.run(self.rootfs, _process(("/bin/sh", "-c", script), **process), (), chunks.append)
        return status, b"".join(chunks).decode()


def _process(args: tuple[str, ...], **fields: object) -> ProcessSpec:
    fields.setdefault("env", ("PATH=/bin",))
    return ProcessSpec(args=args, **fields)  # type: ignore[arg-type]


def make_busybox_root(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    return root


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> LinuxExecutor:
    return LinuxExecutor(tmp_path_factory.mktemp("state"))


@pytest.fixture
def sandbox(executor: LinuxExecutor, tmp_path: Path) -> Sandbox:
    lower = make_busybox_root(tmp_path / "lower")
    (lower / "etc").mkdir()
    (lower / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nalice:x:1001:2002:A:/home/alice:/bin/sh\n")
    (lower / "etc/group").write_text("root:x:0:\nteam:x:4004:alice\n")
    (lower / "data").mkdir()
    (lower / "data/old").write_text("old\n")
    (tmp_path / "upper").mkdir()
    (tmp_path / "work").mkdir()
    return Sandbox(executor, lower, tmp_path / "upper", tmp_path / "work", tmp_path)


def _upper_entries(upper: Path) -> list[str]:
    return sorted(str(path.relative_to(upper)) for path in upper.rglob("*"))


def _host_mounts(fragment: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(fragment) in line]


def _pids_with_arg(marker: str) -> list[int]:
    """This test's own sandboxed processes that carry marker as an argument."""
    return descendants_with_arg(os.getpid(), marker)


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_is_an_executor(executor: LinuxExecutor) -> None:
    checked: Executor = executor
    assert checked is executor


# -- the process ------------------------------------------------------------------------------------------------


def test_exit_status_and_output(sandbox: Sandbox) -> None:
    assert sandbox.run("echo out; echo err >&2; exit 3") == (3, "out\nerr\n")
    assert sandbox.run("true")[0] == 0


def test_output_streams_while_running(sandbox: Sandbox) -> None:
    """The step prints `first`, then waits for the file that the output callback creates when `first` reaches it:
    only output that streams while the process runs lets it print `second` (else it gives up after 60 s)."""
    signals = sandbox.tmp / "signals"
    signals.mkdir()
    arrivals: list[bytes] = []

    def received(chunk: bytes) -> None:
        arrivals.append(chunk)
        if chunk.startswith(b"first"):
            (signals / "go").touch()

    script = (
        "echo first; i=0; while [ ! -e /mnt/signals/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
        "if [ -e /mnt/signals/go ]; then echo second; else echo gave up; fi"
    )
    status = sandbox.executor.run(
        sandbox.rootfs, _process(("/bin/sh", "-c", script)), (Mount(signals, "/mnt/signals"),), received
    )
    assert status == 0
    assert b"".join(arrivals) == b"first\nsecond\n"


def test_pid_one_hostname_proc(sandbox: Sandbox) -> None:
    status, output = sandbox.run(
        "echo $$; hostname; cat /etc/hostname; grep myhost /etc/hosts; cat /proc/1/comm; true", hostname="myhost"
    )
    assert status == 0
    assert output.splitlines() == ["1", "myhost", "myhost", "127.0.0.1\tlocalhost myhost", "sh"]


def test_dev_and_sys(sandbox: Sandbox) -> None:
    status, output = sandbox.run(
        "echo x > /dev/null; head=$(ls /dev); echo $head; ls /dev/pts; touch /sys/x 2>/dev/null || echo ro",
    )
    assert status == 0, output
    lines = output.splitlines()
    devices = ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty"]
    assert lines[0].split() == sorted([*devices, "urandom", "zero"])
    assert lines[1:] == ["ptmx", "ro"]


def test_network_none_has_only_loopback_up(sandbox: Sandbox) -> None:
    status, output = sandbox.run("ls /sys/class/net; ip link show lo", network="none")
    assert status == 0, output
    assert output.splitlines()[0] == "lo"
    assert "UP" in output.splitlines()[1]


def test_network_host_sees_host_interfaces(sandbox: Sandbox) -> None:
    status, output = sandbox.run("ls /sys/class/net", network="host")
    assert status == 0
    assert output.split() == sorted(os.listdir("/sys/class/net"))


def test_environment(sandbox: Sandbox) -> None:
    status, output = sandbox.run("env | sort", env=("PATH=/bin", "A=1", "B=two words"))
    assert status == 0
    assert output.splitlines() == [
        "A=1",
        "B=two words",
        "HOME=/root",
        "HOSTNAME=buildkitsandbox",
        "PATH=/bin",
        "PWD=/",
        "SHLVL=1",
    ]
    # No PATH: Docker's default; HOME from /etc/passwd of the user.
    status, output = sandbox.run("echo $PATH $HOME", env=(), user="alice")
    assert output == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /home/alice\n"


def test_cwd(sandbox: Sandbox) -> None:
    assert sandbox.run("pwd", cwd="/data") == (0, "/data\n")
    assert sandbox.run("pwd", cwd="/made/by/us") == (0, "/made/by/us\n")  # created like BuildKit does


def test_user_and_capabilities(sandbox: Sandbox) -> None:
    status, output = sandbox.run("id -u; id -g; id -G; grep -e CapEff -e CapBnd /proc/self/status", user="alice")
    assert status == 0, output
    assert output.split("\n")[:3] == ["1001", "2002", "2002 4004"]
    assert "CapEff:\t0000000000000000" in output
    assert "CapBnd:\t00000000a80425fb" in output  # Docker's default set, as `docker build` shows it
    status, output = sandbox.run("grep -e CapEff -e CapPrm -e CapInh /proc/self/status")
    assert output.split() == [
        "CapInh:",
        "0000000000000000",
        "CapPrm:",
        "00000000a80425fb",
        "CapEff:",
        "00000000a80425fb",
    ]
    assert sandbox.run("id", user="77:88")[1] == "uid=77 gid=88 groups=88\n"


def test_unknown_user_is_an_exec_error(sandbox: Sandbox) -> None:
    with pytest.raises(UserNotFound, match="unable to find user nosuch: no matching entries in passwd file"):
        sandbox.run("true", user="nosuch")


def test_missing_binary_is_an_exec_error(sandbox: Sandbox) -> None:
    with pytest.raises(ExecError, match=r'^exec: "nope": executable file not found in \$PATH$'):
        sandbox.executor.run(sandbox.rootfs, _process(("nope",)))
    with pytest.raises(ExecError, match=r'^exec: "/no/such": stat /no/such: no such file or directory$'):
        sandbox.executor.run(sandbox.rootfs, _process(("/no/such",)))
    with pytest.raises(ExecError, match=r'^exec: "/bin": permission denied$'):
        sandbox.executor.run(sandbox.rootfs, _process(("/bin",)))
    assert sandbox.executor.run(sandbox.rootfs, _process(("true",))) == 0  # PATH lookup


def test_killed_by_signal_is_128_plus_n(sandbox: Sandbox) -> None:
    marker = "31.4159"
    outcome: list[int] = []

    def target() -> None:
        outcome.append(sandbox.run(f"exec sleep {marker}")[0])

    thread = threading.Thread(target=target)
    thread.start()
    assert _wait_until(lambda: bool(_pids_with_arg(marker)))
    for pid in _pids_with_arg(marker):
        os.kill(pid, signal.SIGKILL)  # pid 1 ignores the rest, even from the parent namespace
    thread.join(10)
    assert outcome == [128 + signal.SIGKILL]


def test_background_processes_die_with_the_step(sandbox: Sandbox) -> None:
    marker = "27.1828"
    assert sandbox.run(f"sleep {marker} & sleep {marker} & echo started") == (0, "started\n")
    assert _wait_until(lambda: not _pids_with_arg(marker), timeout=2)


def test_mounts(sandbox: Sandbox) -> None:
    shared = sandbox.tmp / "shared"
    shared.mkdir()
    (shared / "in").write_text("hello\n")
    writable = sandbox.tmp / "writable"
    writable.mkdir()
    mounts = (Mount(shared, "/mnt/shared"), Mount(writable, "/data/out", readonly=False))
    chunks: list[bytes] = []
    script = "cat /mnt/shared/in; touch /mnt/shared/x 2>/dev/null || echo ro; echo w > /data/out/f"
    status = sandbox.executor.run(sandbox.rootfs, _process(("/bin/sh", "-c", script)), mounts, chunks.append)
    assert (status, b"".join(chunks)) == (0, b"hello\nro\n")
    assert (writable / "f").read_text() == "w\n"
    # The mountpoints we had to create are gone again; /data existed, so only its copy-up may remain.
    assert not (sandbox.upper / "mnt").exists()
    assert not (sandbox.upper / "data/out").exists()


def test_overlay_and_tmpfs_mounts(sandbox: Sandbox) -> None:
    lower = sandbox.tmp / "stage-lower"
    lower.mkdir()
    (lower / "built").write_text("from another stage\n")
    scratch_upper, scratch_work = sandbox.tmp / "mount-upper", sandbox.tmp / "mount-work"
    scratch_upper.mkdir()
    scratch_work.mkdir()
    mounts = (
        OverlayMount((lower,), "/from/stage"),
        OverlayMount((lower,), "/from/writable", scratch_upper, scratch_work),
        TmpfsMount("/scratch/tmp", size_bytes=1 << 20),
    )
    script = (
        "cat /from/stage/built; touch /from/stage/x 2>/dev/null || echo ro;"
        " echo w > /from/writable/new; cat /from/writable/built;"
        " echo t > /scratch/tmp/t; mount | grep -c ' /scratch/tmp type tmpfs'; head -c 2000000 /dev/zero > /scratch/tmp/big"
        " 2>/dev/null || echo full"
    )
    chunks: list[bytes] = []
    status = sandbox.executor.run(sandbox.rootfs, _process(("/bin/sh", "-c", script)), mounts, chunks.append)
    assert (status, b"".join(chunks).decode()) == (0, "from another stage\nro\nfrom another stage\n1\nfull\n")
    assert (scratch_upper / "new").read_text() == "w\n"  # the writes went to the mount's own upper
    assert not (lower / "new").exists()
    assert not (sandbox.upper / "from").exists() and not (sandbox.upper / "scratch").exists()


def test_concurrent_steps_share_one_executor(executor: LinuxExecutor, tmp_path: Path) -> None:
    lower = make_busybox_root(tmp_path / "lower")
    results: dict[int, tuple[int, bytes]] = {}

    def step(index: int) -> None:
        upper, work = tmp_path / f"upper{index}", tmp_path / f"work{index}"
        upper.mkdir()
        work.mkdir()
        chunks: list[bytes] = []
        script = f"sleep 0.2; echo {index} > /mine; cat /mine; ls /"
        status = executor.run(RootfsSpec((lower,), upper, work), _process(("/bin/sh", "-c", script)), (), chunks.append)
        results[index] = (status, b"".join(chunks))

    threads = [threading.Thread(target=step, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    for index in range(4):
        status, output = results[index]
        assert status == 0
        assert output.decode().split() == [str(index), "bin", "dev", "etc", "mine", "proc", "sys"]
        assert (tmp_path / f"upper{index}/mine").read_text() == f"{index}\n"


# -- the layer --------------------------------------------------------------------------------------------------


def test_changes_land_in_upper_with_whiteouts_and_opaque_dirs(sandbox: Sandbox) -> None:
    status, _ = sandbox.run("echo new > /new; rm /bin/cat; rm -rf /data; mkdir /data; echo n > /data/n")
    assert status == 0
    assert (sandbox.upper / "new").read_text() == "new\n"
    whiteout = os.lstat(sandbox.upper / "bin/cat")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(sandbox.upper / "data", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(sandbox.upper / "data")) == ["n"]
    assert (sandbox.lower / "bin/cat").is_symlink()  # the lower is untouched


def test_no_init_layer_entry_leaks_into_upper(sandbox: Sandbox) -> None:
    # Docker 20.10 (`docker save`): `RUN busybox --install -s /bin` yields only bin/...; `RUN touch /etc/x` yields
    # exactly etc/ and etc/x: no .dockerenv, dev, proc, sys, etc/hosts, etc/resolv.conf or etc/hostname.
    assert sandbox.run("cat /etc/hosts /etc/resolv.conf > /dev/null; ls /proc/self > /dev/null")[0] == 0
    assert _upper_entries(sandbox.upper) == []
    assert sandbox.run("touch /etc/x")[0] == 0
    assert _upper_entries(sandbox.upper) == ["etc", "etc/x"]


def _layer_names(upper: Path) -> set[str]:
    """What a layer tar of `upper` would hold, whiteouts written the OCI way."""
    names = set()
    for path in upper.rglob("*"):
        relative = path.relative_to(upper)
        info = path.lstat()
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            relative = relative.parent / f".wh.{relative.name}"
        names.add(relative.as_posix())
    return names


@pytest.mark.docker
def test_run_layers_match_dockers(executor: LinuxExecutor, tmp_path: Path) -> None:
    steps = ['["/bin/busybox","--install","-s","/bin"]', "touch /etc/x", "rm /bin/cat && mkdir -p /tmp/a"]
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy2(BUSYBOX, context / "busybox")
    lines = ["FROM scratch", "COPY busybox /bin/busybox", *(f"RUN {step}" for step in steps)]
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    tag = f"buildkit-py-test-exec:{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    subprocess.run(["docker", "build", "-q", "--network=none", "-t", tag, str(context)], env=env, check=True)
    try:
        saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        docker_layers = []
        for name in manifest[0]["Layers"][1:]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                docker_layers.append({member.name.rstrip("/") for member in layer.getmembers()})

    lowers = [tmp_path / "base"]
    (lowers[0] / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, lowers[0] / "bin/busybox")
    ours = []
    for index, step in enumerate(steps):
        upper, work = tmp_path / f"upper{index}", tmp_path / f"work{index}"
        upper.mkdir()
        work.mkdir()
        args = tuple(json.loads(step)) if step.startswith("[") else ("/bin/sh", "-c", step)
        rootfs = RootfsSpec(tuple(reversed(lowers)), upper, work)
        assert executor.run(rootfs, _process(args, network="none")) == 0
        ours.append(_layer_names(upper))
        lowers.append(upper)
    assert ours == docker_layers


def test_from_scratch(executor: LinuxExecutor, tmp_path: Path) -> None:
    (tmp_path / "upper").mkdir()
    (tmp_path / "work").mkdir()
    rootfs = RootfsSpec((), tmp_path / "upper", tmp_path / "work")
    with pytest.raises(ExecError, match="executable file not found"):
        executor.run(rootfs, _process(("sh",)))
    assert _upper_entries(tmp_path / "upper") == []


def test_init_layer_like_dockers(executor: LinuxExecutor) -> None:
    layer = executor.init_layer
    for name in INIT_DIRS:
        assert stat.S_IMODE((layer / name).stat().st_mode) == 0o755
    for name in INIT_FILES:
        info = (layer / name).lstat()
        assert stat.S_ISREG(info.st_mode) and info.st_size == 0 and stat.S_IMODE(info.st_mode) == 0o755
    assert os.readlink(layer / "etc/mtab") == "/proc/mounts"


def test_too_many_layers_for_one_page_is_a_clear_error(executor: LinuxExecutor, tmp_path: Path) -> None:
    layers = tmp_path / "layers"
    lowers = []
    for index in range(110):
        lowers.append(layers / f"{index:040d}")
        lowers[-1].mkdir(parents=True)
    (tmp_path / "upper").mkdir()
    (tmp_path / "work").mkdir()
    rootfs = RootfsSpec(tuple(lowers), tmp_path / "upper", tmp_path / "work")
    with pytest.raises(ExecError, match="more than the page size"):
        executor.run(rootfs, _process(("true",)))


# -- nothing stays behind ---------------------------------------------------------------------------------------


def test_no_mounts_left_on_the_host(sandbox: Sandbox) -> None:
    state = sandbox.executor.state_dir
    assert sandbox.run("true")[0] == 0
    with pytest.raises(ExecError):
        sandbox.run("true", user="nosuch")
    assert _host_mounts(sandbox.tmp) == [] and _host_mounts(state) == []
    assert os.listdir(sandbox.executor.scratch) == []


CALLER = """
import sys
from pathlib import Path
from buildkit_py.exec.executor import ProcessSpec, RootfsSpec
from buildkit_py.exec.linux import LinuxExecutor

lower, upper, work, state = map(Path, sys.argv[1:5])

def echo(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.flush()

LinuxExecutor(state).run(RootfsSpec((lower,), upper, work), ProcessSpec(args=("/bin/sh", "-c", sys.argv[5]),
    env=("PATH=/bin",)), (), echo)
"""


def test_sigkill_of_the_caller_leaves_nothing(sandbox: Sandbox) -> None:
    marker = "42.4242"
    state = sandbox.tmp / "state"
    args = [str(sandbox.lower), str(sandbox.upper), str(sandbox.work), str(state), f"echo started; sleep {marker}"]
    caller = subprocess.Popen([sys.executable, "-c", CALLER, *args], stdout=subprocess.PIPE)
    try:
        assert caller.stdout is not None
        assert caller.stdout.readline() == b"started\n"
        assert _wait_until(lambda: bool(descendants_with_arg(caller.pid, marker)))
        assert _host_mounts(sandbox.tmp) == []
        # Held by pidfds: once the caller dies its processes are no longer below this test in the tree.
        with watched(descendants(caller.pid)) as spawned:
            assert len(spawned.fds) >= 2  # the sandbox and the step's sleep
            caller.kill()
            caller.wait()
            assert spawned.still_running_after(5) == []
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
    assert _host_mounts(sandbox.tmp) == []


def test_kill_all(sandbox: Sandbox) -> None:
    marker = "17.1717"
    errors: list[ExecError] = []

    def target() -> None:
        try:
            sandbox.run(f"sleep {marker}")
        except ExecError as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    assert _wait_until(lambda: bool(_pids_with_arg(marker)))
    sandbox.executor.kill_all()
    thread.join(10)
    assert len(errors) == 1
    assert "killed by signal 9" in str(errors[0])
    assert _wait_until(lambda: not _pids_with_arg(marker))
    assert _host_mounts(sandbox.tmp) == []


# -- file actions -----------------------------------------------------------------------------------------------


def shim_apply_actions(
    dest_root: Path, sources: Mapping[str, Path], actions: Sequence[FileAction], counter: object = None
) -> None:
    """Stands in for buildkit_py.exec.fileops until it lands: MkdirAction, and a naive single-file CopyAction."""
    for action in actions:
        if isinstance(action, MkdirAction):
            if action.path == "/refuse":
                raise ContextError("refusing /refuse")
            (dest_root / action.path.lstrip("/")).mkdir(mode=action.mode, parents=action.make_parents)
        else:
            source = sources[str(action.source)] / action.src.lstrip("/")
            shutil.copy2(source, dest_root / action.dest.lstrip("/"))


@pytest.fixture
def file_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinuxExecutor]:
    yield LinuxExecutor(tmp_path_factory.mktemp("state"), apply_actions=shim_apply_actions)


def test_apply_file_actions(file_executor: LinuxExecutor, sandbox: Sandbox) -> None:
    context = sandbox.tmp / "context"
    context.mkdir()
    (context / "c").write_text("from context\n")
    layer1 = make_busybox_root(sandbox.tmp / "layer1")
    (layer1 / "one").write_text("1\n")
    layer2 = sandbox.tmp / "layer2"
    layer2.mkdir()
    os.mknod(layer2 / "one", stat.S_IFCHR, 0)  # a whiteout: layer2 deletes layer1's /one
    (layer2 / "two").write_text("2\n")
    ctx, image, single, empty = (digest_bytes(name.encode()) for name in ("ctx", "image", "single", "empty"))
    actions = (
        MkdirAction("/made/deep", mode=0o700),
        CopyAction(ctx, "c", "/c"),
        CopyAction(image, "two", "/two"),
        CopyAction(single, "one", "/one"),
    )
    sources = {
        str(ctx): SourceTree(folder=context),
        str(image): SourceTree(lowers=(layer2, layer1)),
        str(single): SourceTree(lowers=(layer1,)),
        str(empty): SourceTree(),
    }
    file_executor.apply_file_actions(sandbox.rootfs, actions, sources)
    assert _upper_entries(sandbox.upper) == ["c", "made", "made/deep", "one", "two"]
    assert stat.S_IMODE((sandbox.upper / "made/deep").stat().st_mode) == 0o700
    assert (sandbox.upper / "c").read_text() == "from context\n"
    assert _host_mounts(sandbox.tmp) == []

    # A whiteout in the source's upper layer hides the file below it.
    with pytest.raises(ExecError, match="No such file or directory"):
        file_executor.apply_file_actions(sandbox.rootfs, (CopyAction(image, "one", "/x"),), sources)


def test_file_action_errors_keep_their_class(file_executor: LinuxExecutor, sandbox: Sandbox) -> None:
    with pytest.raises(ContextError, match="^refusing /refuse$"):
        file_executor.apply_file_actions(sandbox.rootfs, (MkdirAction("/refuse"),), {})


def test_file_actions_from_scratch(file_executor: LinuxExecutor, tmp_path: Path) -> None:
    (tmp_path / "upper").mkdir()
    (tmp_path / "work").mkdir()
    rootfs = RootfsSpec((), tmp_path / "upper", tmp_path / "work")
    file_executor.apply_file_actions(rootfs, (MkdirAction("/a/b"),), {})
    assert _upper_entries(tmp_path / "upper") == ["a", "a/b"]


def test_callers_sandbox_script_is_importable() -> None:
    # The fork server imports the sandbox module; a syntax or import error there would only show up as "the sandbox
    # fork server is gone" in every other test.
    result = subprocess.run(
        [sys.executable, "-c", "import buildkit_py.exec.sandbox"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, textwrap.shorten(result.stderr, 500)
