"""Two builds on one store at once, and a build killed with SIGKILL: the store stays consistent."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, base_context
from processes import LineReader, descendants, watched


def pybuild(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args]


@pytest.fixture()
def root_with_base(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    subprocess.run(pybuild(root, "build", "-q", "-t", BASE_IMAGE, str(base_context(tmp_path))), check=True)
    return root


def project(folder: Path, name: str, shared: str) -> Path:
    folder.mkdir()
    (folder / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nRUN echo {shared} > /shared && sleep 1\nRUN echo {name} > /own\n"
    )
    return folder


def test_two_builds_at_once_both_succeed_and_share_hits(root_with_base: Path, tmp_path: Path) -> None:
    shared = f"shared-{tmp_path.name}"
    one = project(tmp_path / "one", "one", shared)
    two = project(tmp_path / "two", "two", shared)
    processes = [
        subprocess.Popen(
            pybuild(root_with_base, "build", "--progress=plain", "-t", f"app/{p.name}", str(p)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in (one, two)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    images = subprocess.run(pybuild(root_with_base, "images"), capture_output=True, text=True, check=True).stdout
    assert "app/one" in images and "app/two" in images
    # Both ran the shared step at the same time or one reused the other's; a third build hits everything.
    third = project(tmp_path / "three", "one", shared)
    rebuilt = subprocess.run(
        pybuild(root_with_base, "build", "--progress=plain", str(third)), capture_output=True, text=True, check=True
    )
    assert rebuilt.stderr.count("CACHED") == 2, rebuilt.stderr


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


# How long a RUN step may take to start on a loaded machine; only a failure waits this long.
STEP_START_TIMEOUT = 120


def start_slow_build(root: Path, folder: Path, marker: str, *args: str) -> tuple[subprocess.Popen[str], LineReader]:
    """A build whose RUN step prints `step-<marker>` (printf, so the step's name does not end with it) and sleeps;
    returns once that line came through the plain progress, so the step is running."""
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN printf 'step-%s\\n' {marker} && sleep 60\n")
    process = subprocess.Popen(
        pybuild(root, "build", "--progress=plain", *args, str(folder)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = LineReader(process.stdout)
    if not output.wait_for(f"step-{marker}", STEP_START_TIMEOUT):
        process.kill()
        process.wait()
        pytest.fail(f"the RUN step did not start within {STEP_START_TIMEOUT}s; output:\n{output.rest(10)}")
    return process, output


def build_processes(process: subprocess.Popen[str]) -> list[int]:
    """Everything pybuild started and still runs: its fork server and the sandbox (its pid 1 and the step's shell)."""
    found = descendants(process.pid)
    assert found, f"no process below pybuild (pid {process.pid}) while its RUN step runs"
    return found


def test_sigkill_mid_build_leaves_a_usable_store_and_no_mounts(root_with_base: Path, tmp_path: Path) -> None:
    folder = tmp_path / "slow"
    marker = uuid.uuid4().hex
    mounts_before = _mounts().count(str(root_with_base))
    process, _ = start_slow_build(root_with_base, folder, marker, "-t", "slow")
    with watched(build_processes(process)) as step:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert step.still_running_after(10) == [], "the step outlived pybuild"
    assert _mounts().count(str(root_with_base)) == mounts_before
    (folder / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo {marker} > /m\n")
    finished = subprocess.run(
        pybuild(root_with_base, "build", "-q", "-t", "slow", str(folder)), capture_output=True, check=False
    )
    assert finished.returncode == 0, finished.stderr
    listing = subprocess.run(pybuild(root_with_base, "images"), capture_output=True, text=True, check=True).stdout
    assert "slow" in listing and "pybuild-test/busybox" in listing


def test_ctrl_c_stops_the_build_with_130_and_leaves_nothing_running(root_with_base: Path, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    process, output = start_slow_build(root_with_base, tmp_path / "interrupted", marker)
    with watched(build_processes(process)) as step:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        text = output.rest(10)
        assert process.returncode == 130, text
        assert "interrupted" in text and "Traceback" not in text
        assert step.still_running_after(10) == [], "the step outlived pybuild"
    assert str(root_with_base) not in _mounts()
