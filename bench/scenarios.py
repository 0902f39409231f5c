"""The shared scenarios: where they live, which file each measurement edits, and the base images they need."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from timing import SetupError, run_quiet

BUSYBOX_TAG = "bench/busybox:latest"
DEBIAN_TAG = "local/debian:bookworm"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


@dataclass(frozen=True)
class Scenario:
    name: str
    early: str  # appended to before measurement d: everything from its COPY on reruns
    late: str  # appended to before measurement c: only the last COPY reads it
    base: str  # the image the Dockerfile starts FROM (besides the busybox base every engine builds)

    def context(self, bench: Path) -> Path:
        return bench / "scenarios" / self.name

    def tag(self) -> str:
        return f"pybuild-bench/{self.name}:latest"


# The scenarios of ../shared/bench/make_scenarios.sh (issue 14's peak-RSS goal is over these).
SHARED_SCENARIOS = ("tiny", "many-steps", "big-context", "multi-stage", "deletion-heavy", "debian-app")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("tiny", "early.txt", "late.txt", BUSYBOX_TAG),
        Scenario("many-steps", "early.txt", "late.txt", BUSYBOX_TAG),
        Scenario("big-context", "data/keep/d000/f00000.bin", "late.txt", BUSYBOX_TAG),
        Scenario("multi-stage", "early.txt", "late.txt", BUSYBOX_TAG),
        Scenario("deletion-heavy", "early.txt", "late.txt", BUSYBOX_TAG),
        # debian-app has no late.txt: its last COPY reads app/, so the late change goes to a file in app/.
        Scenario("debian-app", "early.txt", "app/main.py", DEBIAN_TAG),
    )
}


def ensure_generated(script: Path, bench: Path, names: list[str], regenerate: bool) -> None:
    """Run make_scenarios.sh for the scenarios not generated yet (all of `names` when regenerating)."""
    missing = [n for n in names if regenerate or not (SCENARIOS[n].context(bench) / "Dockerfile").is_file()]
    if not missing and (bench / "base-busybox" / "Dockerfile").is_file():
        return
    env = dict(os.environ, BENCH=str(bench))
    subprocess.run(["bash", str(script), *missing], env=env, check=True, stdout=subprocess.DEVNULL)


def append_line(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


def debian_mirror() -> str:
    """The first URIs of the Debian sources file that is not the security archive."""
    text = DEBIAN_SOURCES.read_text()
    for uri in re.findall(r"^URIs:\s*(\S+)", text, flags=re.MULTILINE):
        if "security" not in uri:
            return str(uri)
    raise SetupError(f"no Debian mirror in {DEBIAN_SOURCES}")


def ensure_debian_tar(tar_path: Path) -> Path:
    """debootstrap --variant=minbase bookworm once; the rootfs is cached as a plain tar (numeric owners)."""
    if tar_path.is_file():
        return tar_path
    if shutil.which("debootstrap") is None:
        raise SetupError("debootstrap is not installed")
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tar_path.parent) as scratch:
        rootfs = Path(scratch) / "rootfs"
        run_quiet(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), debian_mirror()], timeout=1800)
        partial = tar_path.with_suffix(".partial")
        run_quiet(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."])
        with tarfile.open(partial) as check:  # a truncated tar must not become the cached base
            check.getmember("./etc/debian_version")
        partial.rename(tar_path)
    return tar_path
