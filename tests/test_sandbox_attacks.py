"""A RUN step plays the attacker: each probe is a Dockerfile built by pybuild on the busybox base.

The sandbox must hold as Docker's does: the step sees fds 0-2 only and cannot forge its result; /proc and /sys paths
are masked or read-only; only the default devices open; seccomp refuses new namespaces and mounts; the default
network has outbound access but not the host's loopback. Where Docker is available, the same probe script runs in
`docker run` of the same image and must give the same verdicts.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BASE_IMAGE

from buildkit_py.builder import build
from buildkit_py.errors import StepError
from buildkit_py.solver.progress import ProgressEvent, StepOutput

# Each probe prints "<name>: open" when the attack worked, "<name>: denied" when it did not.
PROBES = r"""#!/bin/sh
mkdir -p /tmp
verdict() { if [ "$2" = 0 ]; then echo "$1: open"; else echo "$1: denied"; fi; }
# Opened for writing, nothing written: a probe must be harmless even when the sandbox fails.
(: >> /proc/sys/kernel/core_pattern) 2>/dev/null; verdict core_pattern $?
(: >> /proc/sysrq-trigger) 2>/dev/null; verdict sysrq-trigger $?
(: >> /proc/sys/vm/drop_caches) 2>/dev/null; verdict drop_caches $?
for file in kcore keys timer_list sched_debug; do
  if [ -e /proc/$file ]; then test "$(head -c 16 /proc/$file 2>/dev/null | wc -c)" -gt 0; verdict $file $?; fi
done
for dir in /proc/acpi /proc/scsi /sys/firmware; do
  if [ -e $dir ]; then test "$(ls -A $dir | wc -l)" -gt 0; verdict $dir $?; fi
done
for device in "loop-control 10 237" "fuse 10 229" "vcs 7 0" "tty1 4 1" "cpu_dma_latency 10 62" "sda 8 0 b"; do
  set -- $device
  kind=${4:-c}
  mknod /tmp/$1 $kind $2 $3 2>/dev/null
  (: < /tmp/$1) 2>/dev/null; verdict "open $1" $?
done
(echo x > /dev/null && head -c 1 /dev/zero > /dev/null && head -c 1 /dev/urandom > /dev/null) 2>/dev/null
verdict default-devices $?
unshare -U -r true 2>/dev/null; verdict "unshare user" $?
unshare -m true 2>/dev/null; verdict "unshare mount" $?
mkdir -p /mnt; mount -t tmpfs none /mnt 2>/dev/null; verdict mount $?
"""
EXPECTED = {
    "core_pattern": "denied",
    "sysrq-trigger": "denied",
    "drop_caches": "denied",
    "kcore": "denied",
    "keys": "denied",
    "timer_list": "denied",
    "sched_debug": "denied",
    "/proc/acpi": "denied",
    "/proc/scsi": "denied",
    "/sys/firmware": "denied",
    "open loop-control": "denied",
    "open fuse": "denied",
    "open vcs": "denied",
    "open tty1": "denied",
    "open cpu_dma_latency": "denied",
    "open sda": "denied",
    "default-devices": "open",
    "unshare user": "denied",
    "unshare mount": "denied",
    "mount": "denied",
}


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


class _Output:
    """Collects what the steps print, through the progress callback."""

    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, StepOutput):
            self.data += event.data

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")


def _build(store: object, context: Path, **options: object) -> _Output:
    output = _Output()
    build(context, store=store, progress=output, **options)  # type: ignore[arg-type]
    return output


def _verdicts(text: str) -> dict[str, str]:
    verdicts = {}
    for line in text.splitlines():
        name, _, verdict = line.rpartition(": ")
        if verdict in ("open", "denied"):
            verdicts[name] = verdict
    return verdicts


def test_step_sees_only_fds_0_to_2(base_store: object, tmp_path: Path) -> None:
    context = _write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                'RUN for fd in $(seq 3 1023); do (eval "echo x >&$fd") 2>/dev/null && echo "fd $fd open"; done;'
                " ls -l /proc/self/fd/ | sed -n 's/.* \\([0-9]*\\) -> \\(.*\\)/fd \\1 \\2/p'; echo done\n"
            )
        },
    )
    text = _build(base_store, context, no_cache=True).text
    assert "done" in text
    assert "open" not in text, text
    listed = [line.split()[1] for line in text.splitlines() if line.startswith("fd ")]
    assert listed == ["0", "1", "2"], text  # ls's own directory descriptor is gone by the time it reads the link


def test_a_forged_status_neither_runs_code_nor_turns_failure_into_success(base_store: object, tmp_path: Path) -> None:
    marker = Path(f"/tmp/pybuild-pwned-{uuid.uuid4().hex}")
    pickle_payload = f"cos\\nsystem\\n(S'touch {marker}'\\ntR."
    context = _write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                f'RUN printf "{pickle_payload}" >&3; printf \'{{"kind": "exit", "status": 0}}\' >&3;'
                ' printf \'{"kind": "exit", "status": 0}\' >&4; exit 42\n'
            )
        },
    )
    with pytest.raises(StepError) as failure:
        build(context, store=base_store, no_cache=True)  # type: ignore[arg-type]
    assert failure.value.exit_status == 42
    assert not marker.exists()


def test_kernel_paths_devices_and_namespaces_are_denied(base_store: object, tmp_path: Path) -> None:
    context = _write(
        tmp_path, {"probe.sh": PROBES, "Dockerfile": f"FROM {BASE_IMAGE}\nCOPY probe.sh /\nRUN sh /probe.sh\n"}
    )
    verdicts = _verdicts(_build(base_store, context, no_cache=True).text)
    expected = {name: verdict for name, verdict in EXPECTED.items() if name in verdicts}
    assert verdicts == expected
    assert {"core_pattern", "keys", "open fuse", "unshare user", "mount", "default-devices"} <= set(verdicts)


@pytest.mark.docker
def test_same_verdicts_as_docker_run(base_store: object, tmp_path: Path) -> None:
    from buildkit_py.image.docker_archive import save_docker_archive

    tag = f"pybuild-test/probes:{uuid.uuid4().hex[:12]}"
    context = _write(
        tmp_path / "context",
        {"probe.sh": PROBES, "Dockerfile": f"FROM {BASE_IMAGE}\nCOPY probe.sh /\nRUN sh /probe.sh\nCMD sh /probe.sh\n"},
    )
    ours = _verdicts(_build(base_store, context, tags=[tag], no_cache=True).text)
    archive = tmp_path / "probes.tar"
    with open(archive, "wb") as stream:
        save_docker_archive(base_store, [tag], stream)  # type: ignore[arg-type]
    subprocess.run(["docker", "load", "-i", str(archive)], check=True, capture_output=True)
    try:
        docker = subprocess.run(["docker", "run", "--rm", tag], capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    assert ours == _verdicts(docker)


# -- network ---------------------------------------------------------------------------------------------------


def _http_get(host: str, port: int, path: str = "/") -> str:
    """A shell command for the busybox base (whose static wget crashes on this glibc): GET with nc."""
    return f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {port}"


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def outside_host(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A server on another machine, as far as the step can tell: in a network namespace this test creates, joined
    to the host by a veth pair (host 10.213.7.1, namespace 10.213.7.2)."""
    if shutil.which("ip") is None:
        pytest.fail("iproute2 (`ip`) is needed to make the test network namespace")
    name = f"pbt{uuid.uuid4().hex[:8]}"
    host_end, ns_end = f"{name}h", f"{name}n"
    commands = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end],
        ["ip", "link", "set", ns_end, "netns", name],
        ["ip", "addr", "add", "10.213.7.1/30", "dev", host_end],
        ["ip", "link", "set", host_end, "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", "10.213.7.2/30", "dev", ns_end],
        ["ip", "netns", "exec", name, "ip", "link", "set", ns_end, "up"],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
    ]
    server: subprocess.Popen[bytes] | None = None
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "hello").write_text("hello from outside\n")
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                name,
                os.path.realpath(sys.executable),
                "-m",
                "http.server",
                "--bind",
                "10.213.7.2",
                "8321",
                "--directory",
                str(tmp_path / "www"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("10.213.7.2", 8321), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("the test server in the network namespace did not start")
                threading.Event().wait(0.05)
        yield "10.213.7.2", 8321
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def test_default_network_reaches_out_but_not_the_hosts_loopback(
    base_store: object, tmp_path: Path, loopback_server: int, outside_host: tuple[str, int]
) -> None:
    address, port = outside_host
    context = _write(
        tmp_path / "context",
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                f"RUN {_http_get(address, port, '/hello')}; echo outbound=$?;"
                f" {_http_get('127.0.0.1', loopback_server)} 2>/dev/null; echo loopback=$?;"
                f" {_http_get('10.0.2.2', loopback_server)} 2>/dev/null; echo gateway=$?\n"
            )
        },
    )
    text = _build(base_store, context, no_cache=True).text
    assert "hello from outside" in text and "outbound=0" in text, text
    assert "hello from the server" not in text
    assert "loopback=0" not in text and "gateway=0" not in text


def test_network_none_and_host(base_store: object, tmp_path: Path, loopback_server: int) -> None:
    dockerfile = f"FROM {BASE_IMAGE}\nRUN {_http_get('127.0.0.1', loopback_server)} 2>&1; echo status=$?\n"
    context = _write(tmp_path / "context", {"Dockerfile": dockerfile})
    none = _build(base_store, context, no_cache=True, network="none").text
    assert "hello from the server" not in none and "status=0" not in none
    host = _build(base_store, context, no_cache=True, network="host").text
    assert "hello from the server" in host


# -- the documented ways out: RUN --network / --security, granted with --allow ----------------------------------


def test_run_flags_need_the_users_allowance(base_store: object, tmp_path: Path, loopback_server: int) -> None:
    from buildkit_py.errors import InstructionError

    insecure = _write(
        tmp_path / "insecure",
        {"Dockerfile": f"FROM {BASE_IMAGE}\nRUN --security=insecure unshare -m true && echo unshared=yes\n"},
    )
    with pytest.raises(InstructionError, match="security.insecure is not allowed: build with --allow"):
        build(insecure, store=base_store)  # type: ignore[arg-type]
    assert "unshared=yes" in _build(base_store, insecure, no_cache=True, allow=["security.insecure"]).text

    host = _write(
        tmp_path / "host",
        {"Dockerfile": f"FROM {BASE_IMAGE}\nRUN --network=host {_http_get('127.0.0.1', loopback_server)}\n"},
    )
    with pytest.raises(InstructionError, match="network.host is not allowed"):
        build(host, store=base_store)  # type: ignore[arg-type]
    assert "hello from the server" in _build(base_store, host, no_cache=True, allow=["network.host"]).text

    none = _write(
        tmp_path / "none",
        {
            "Dockerfile": f"FROM {BASE_IMAGE}\n"
            f"RUN --network=none {_http_get('10.0.2.2', loopback_server)} 2>&1; echo status=$?; ls /sys/class/net\n"
        },
    )
    text = _build(base_store, none, no_cache=True, network="host").text
    assert "hello" not in text and "status=0" not in text and text.split()[-1] == "lo"


def test_a_bad_network_or_security_mode_is_a_dockerfile_error(tmp_path: Path) -> None:
    for flag, message in (("--network=bridge", "invalid network mode"), ("--security=off", "invalid security mode")):
        context = _write(tmp_path / flag[2:9], {"Dockerfile": f"FROM scratch\nRUN {flag} true\n"})
        result = subprocess.run(
            [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(tmp_path / "root"), "build", str(context)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1 and message in result.stderr and "Dockerfile:2" in result.stderr
        assert "Traceback" not in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "buildkit_py.cli.main",
            "--root",
            str(tmp_path / "root"),
            "build",
            "--allow",
            "everything",
            str(context),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "unknown entitlement 'everything'" in result.stderr
