"""The shared scenarios: where they live, which file each measurement edits, and the base images they need."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from timing import SetupError, run_quiet

BUSYBOX_TAG = "bench/busybox:latest"
DEBIAN_TAG = "local/debian:bookworm"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# The shared scenario generator beside the project root, and the debootstrap tarball made once for debian-app.
MAKE_SCENARIOS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "make_scenarios.sh"
DEBIAN_TAR = Path("/var/tmp/pybuild-bench-debian/bookworm-minbase.tar")
DEFAULT_BENCH = Path("/var/tmp/pybuild-bench")


@dataclass(frozen=True)
class Scenario:
    name: str
    early: str  # appended to before measurement d: everything from its COPY on reruns
    late: str  # appended to before measurement c: only the last COPY reads it
    base: str  # the image the Dockerfile starts FROM (besides the busybox base every engine builds)
    # Our own scenarios are generated here, into the (emptied) context folder; None: make_scenarios.sh makes it.
    generate: Callable[[Path], None] | None = None

    def context(self, bench: Path) -> Path:
        return bench / "scenarios" / self.name

    def tag(self) -> str:
        return f"pybuild-bench/{self.name}:latest"


MANY_FILES_EARLY = "tree/d00/d00/f00000.txt"


def generate_many_files(context: Path) -> None:
    """A context of 100,000 small files (100-2,000 bytes, 105 MB in all) in 2,500 folders of 40, plus 1,000 files
    that .dockerignore leaves out. Seeded, so every generation is the same bytes. The big COPY reads tree/ (the early
    file is in it); the last COPY reads late.txt alone, so that a late change reruns only that step."""
    rng = random.Random(14)
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 \n"
    pool = bytes(rng.choice(alphabet) for _ in range(1 << 16))  # text-like content, sliced at random offsets
    for top in range(50):
        for sub in range(50):
            folder = context / "tree" / f"d{top:02d}" / f"d{sub:02d}"
            folder.mkdir(parents=True)
            for index in range(40):
                number = (top * 50 + sub) * 40 + index
                size = rng.randint(100, 2000)
                start = rng.randrange(len(pool) - size)
                (folder / f"f{number:05d}.txt").write_bytes(b"%d\n" % number + pool[start : start + size])
    scratch = context / "scratch"
    for index in range(1000):
        if index % 100 == 0:
            (scratch / f"s{index // 100}").mkdir(parents=True)
        (scratch / f"s{index // 100}" / f"t{index:04d}.tmp").write_bytes(pool[index : index + 500])
    (context / ".dockerignore").write_text("scratch\n*.tmp\n")
    (context / "late.txt").write_text("late file v0\n")
    (context / "Dockerfile").write_text(
        "FROM bench/busybox:latest\n"
        "COPY tree /ctx/tree\n"
        "RUN find /ctx/tree -type f | wc -l > /ctx/count\n"
        "COPY late.txt /app/late.txt\n"
    )


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
        # ours (issue 14), not make_scenarios.sh's: not in the default list, as Docker's classic builder takes about
        # 13 minutes on its cold build
        Scenario("many-files", MANY_FILES_EARLY, "late.txt", BUSYBOX_TAG, generate=generate_many_files),
    )
}
SHARED_SCENARIOS = [name for name, scenario in SCENARIOS.items() if scenario.generate is None]


def ensure_generated(script: Path, bench: Path, names: list[str], regenerate: bool) -> None:
    """Run make_scenarios.sh for the scenarios not generated yet (all of `names` when regenerating), and our own
    generators for ours. A context is generated under a temporary name and renamed, so a half-made one is never
    taken for a whole one."""
    missing = [n for n in names if regenerate or not (SCENARIOS[n].context(bench) / "Dockerfile").is_file()]
    shared = [n for n in missing if SCENARIOS[n].generate is None]
    if shared or not (bench / "base-busybox" / "Dockerfile").is_file():
        env = dict(os.environ, BENCH=str(bench))
        # Without names the script makes them all; it makes the base with any, so the smallest stands in.
        subprocess.run(["bash", str(script), *(shared or ["tiny"])], env=env, check=True, stdout=subprocess.DEVNULL)
    for name in missing:
        scenario = SCENARIOS[name]
        if scenario.generate is None:
            continue
        context = scenario.context(bench)
        partial = context.with_name(context.name + ".partial")
        for stale in (partial, context):
            if stale.exists():
                shutil.rmtree(stale)
        partial.mkdir(parents=True)
        scenario.generate(partial)
        partial.rename(context)


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
