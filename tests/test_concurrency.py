"""Two builds on one store at once, and a build killed with SIGKILL: the store stays consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, base_context

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root for namespaces and overlayfs")


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


def test_sigkill_mid_build_leaves_a_usable_store_and_no_mounts(root_with_base: Path, tmp_path: Path) -> None:
    folder = tmp_path / "slow"
    folder.mkdir()
    marker = f"marker-{tmp_path.name}"
    (folder / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo {marker} > /m && sleep 60\n")
    mounts_before = _mounts().count(str(root_with_base))
    process = subprocess.Popen(
        pybuild(root_with_base, "build", "--progress=plain", "-t", "slow", str(folder)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True, check=False).stdout.split()
        if found:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the RUN step never started")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline
        and subprocess.run(["pgrep", "-f", marker], capture_output=True, check=False).returncode == 0
    ):
        time.sleep(0.1)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True, check=False).returncode != 0, (
        "the step outlived pybuild"
    )
    assert _mounts().count(str(root_with_base)) == mounts_before
    (folder / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo {marker} > /m\n")
    finished = subprocess.run(
        pybuild(root_with_base, "build", "-q", "-t", "slow", str(folder)), capture_output=True, check=False
    )
    assert finished.returncode == 0, finished.stderr
    listing = subprocess.run(pybuild(root_with_base, "images"), capture_output=True, text=True, check=True).stdout
    assert "slow" in listing and "pybuild-test/busybox" in listing


def test_ctrl_c_stops_the_build_with_130_and_leaves_nothing_running(root_with_base: Path, tmp_path: Path) -> None:
    folder = tmp_path / "interrupted"
    folder.mkdir()
    marker = f"int-{tmp_path.name}"
    (folder / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo {marker} && sleep 60\n")
    process = subprocess.Popen(
        pybuild(root_with_base, "build", "--progress=plain", str(folder)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and subprocess.run(["pgrep", "-f", "sleep 60"], check=False, capture_output=True).returncode
    ):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    assert subprocess.run(["pgrep", "-f", marker], check=False, capture_output=True).returncode != 0
    assert str(root_with_base) not in _mounts()
