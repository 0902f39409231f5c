"""The engines under test. Each one prepares its base images once, empties its build cache before a cold build
(keeping the bases), and gives the command line that is timed. Only the build command itself is ever timed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scenarios import BUSYBOX_TAG, DEBIAN_TAG, Scenario
from timing import SetupError, run_quiet

TRASH = "trash"  # under the work folder: pybuild roots set aside, deleted when the measurements are over


@dataclass
class Bases:
    busybox_context: Path
    debian_tar: Path | None  # None: no scenario needs it, or it could not be made


@dataclass
class Engine:
    """Shared plumbing; subclasses fill in prepare, reset and argv."""

    work: Path
    label: str = ""
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path | None = None
    # Why this engine cannot build a base (then the scenarios on that base are skipped with the note).
    unsupported: dict[str, str] = field(default_factory=dict)

    def prepare(self, bases: Bases) -> None:
        raise NotImplementedError

    def reset(self, scenario: Scenario) -> None:
        raise NotImplementedError

    def argv(self, scenario: Scenario, context: Path) -> list[str]:
        raise NotImplementedError

    def before_build(self, scenario: Scenario) -> None:
        """Untimed, before every build."""

    def after_build(self, scenario: Scenario, log: Path) -> None:
        """Untimed, after every build."""

    def cold_warning(self, log: Path) -> str | None:
        """A note when a cold build's log shows a cache hit (the reset was incomplete)."""
        return None

    def cleanup(self, scenario: Scenario) -> None:
        """Free the scenario's space at the end; by default a cold reset does it."""
        self.reset(scenario)


# Docker's classic builder -------------------------------------------------------------------------------------

_DOCKER_STEP_ID = re.compile(r"^ ---> ([0-9a-f]{12})\s*$", re.MULTILINE)


@dataclass
class DockerEngine(Engine):
    """`DOCKER_BUILDKIT=0 docker build --network=none`. The daemon is shared with other users, so the cold reset
    removes only the images our builds printed (recorded in a file, so a previous run's leftovers go too)."""

    base_ids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.label = self.label or "docker"
        self.env = dict(self.env, DOCKER_BUILDKIT="0")

    def prepare(self, bases: Bases) -> None:
        run_quiet(["docker", "build", "--network=none", "-t", BUSYBOX_TAG, str(bases.busybox_context)], env=self.env)
        self.base_ids[BUSYBOX_TAG] = self._image_id(BUSYBOX_TAG)
        if bases.debian_tar is not None:
            if run_quiet(["docker", "image", "inspect", DEBIAN_TAG], check=False).returncode != 0:
                run_quiet(["docker", "import", str(bases.debian_tar), DEBIAN_TAG])
            self.base_ids[DEBIAN_TAG] = self._image_id(DEBIAN_TAG)

    def _image_id(self, name: str) -> str:
        return run_quiet(["docker", "image", "inspect", "--format", "{{.Id}}", name]).stdout.strip()

    def before_build(self, scenario: Scenario) -> None:
        # Someone else may retag the base on this shared daemon; our cache hangs under our base's id.
        for name, image_id in self.base_ids.items():
            current = run_quiet(["docker", "image", "inspect", "--format", "{{.Id}}", name], check=False).stdout.strip()
            if current != image_id:
                run_quiet(["docker", "tag", image_id, name])

    def _record(self, scenario: Scenario) -> Path:
        return self.work / "docker" / f"{scenario.name}.ids"

    def after_build(self, scenario: Scenario, log: Path) -> None:
        ids = _DOCKER_STEP_ID.findall(log.read_text(errors="replace"))
        record = self._record(scenario)
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "a") as f:
            f.writelines(i + "\n" for i in ids)

    def reset(self, scenario: Scenario) -> None:
        run_quiet(["docker", "rmi", scenario.tag()], check=False)
        record = self._record(scenario)
        if record.is_file():
            ids = list(dict.fromkeys(reversed(record.read_text().split())))  # newest (leaves) first
            bases = {i.removeprefix("sha256:")[:12] for i in self.base_ids.values()}
            ids = [i for i in ids if i not in bases]
            for chunk in range(0, len(ids), 200):
                run_quiet(["docker", "rmi", *ids[chunk : chunk + 200]], check=False)
            record.unlink()
        run_quiet(["docker", "builder", "prune", "-af"], check=False)

    def argv(self, scenario: Scenario, context: Path) -> list[str]:
        return ["docker", "build", "--network=none", "-t", scenario.tag(), str(context)]

    def cold_warning(self, log: Path) -> str | None:
        return _unexpected_hits(log, re.compile(r"^Step \d+/\d+ : (.*)$"), re.compile(r"^ ---> Using cache"))


# buildah ------------------------------------------------------------------------------------------------------


@dataclass
class BuildahEngine(Engine):
    """`buildah bud --isolation=oci (runc) --layers --jobs=N` on overlay, in a storage root of its own, so that a cold
    reset can remove every image but the bases without touching anyone else's."""

    jobs: int = 1
    base_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.label = self.label or ("buildah" if self.jobs == 1 else f"buildah --jobs={self.jobs}")
        self.store = self.work / f"buildah-j{self.jobs}"

    def _buildah(self) -> list[str]:
        return [
            "buildah",
            "--root", str(self.store / "root"),
            "--runroot", str(self.store / "run"),
            "--storage-driver", "overlay",
        ]  # fmt: skip

    def prepare(self, bases: Bases) -> None:
        b = self._buildah()
        # Built without --layers so that the base is one image and no intermediate is left to protect.
        run_quiet([*b, "bud", "--isolation=oci", "--network=none", "-t", BUSYBOX_TAG, str(bases.busybox_context)])
        self.base_ids = {run_quiet([*b, "images", "-q", "--no-trunc", BUSYBOX_TAG]).stdout.strip()}
        if bases.debian_tar is not None:
            found = run_quiet([*b, "images", "-q", "--no-trunc", DEBIAN_TAG], check=False)
            if found.returncode != 0 or not found.stdout.strip():
                # buildah has no `import`: a scratch container, the tar unpacked into it by `add`, committed.
                container = run_quiet([*b, "from", "scratch"]).stdout.strip()
                run_quiet([*b, "add", container, str(bases.debian_tar), "/"])
                run_quiet([*b, "commit", "-q", container, DEBIAN_TAG])
                run_quiet([*b, "rm", container])
            self.base_ids.add(run_quiet([*b, "images", "-q", "--no-trunc", DEBIAN_TAG]).stdout.strip())

    def reset(self, scenario: Scenario) -> None:
        b = self._buildah()
        run_quiet([*b, "rm", "--all"], check=False)
        listed = run_quiet([*b, "images", "-a", "-q", "--no-trunc"]).stdout.split()
        doomed = [i for i in dict.fromkeys(listed) if i not in self.base_ids]
        if doomed:
            run_quiet([*b, "rmi", "-f", *doomed], check=False)
        left = set(run_quiet([*b, "images", "-a", "-q", "--no-trunc"]).stdout.split()) - self.base_ids
        if left:
            raise SetupError(f"{self.label}: could not remove cached images {sorted(left)[:3]}")

    def argv(self, scenario: Scenario, context: Path) -> list[str]:
        return [
            *self._buildah(), "bud",
            "--isolation=oci", "--layers", f"--jobs={self.jobs}", "--pull=never", "--network=none",
            "-t", scenario.tag(), str(context),
        ]  # fmt: skip

    def cold_warning(self, log: Path) -> str | None:
        return _unexpected_hits(log, re.compile(r"STEP \d+/\d+: (.*)$"), re.compile(r"^--> Using cache"))


# pybuild ------------------------------------------------------------------------------------------------------


@dataclass
class PybuildEngine(Engine):
    """`pybuild --root R build`. A cold build gets a fresh root holding only the base images (made untimed)."""

    command: Sequence[str] = ()
    jobs: int | None = None

    def __post_init__(self) -> None:
        self.label = self.label or ("pybuild" if self.jobs is None else f"pybuild --jobs={self.jobs}")
        self.root = self.work / ("pybuild" if self.jobs is None else f"pybuild-j{self.jobs}")
        self.bases: Bases | None = None

    def _pybuild(self, root: Path) -> list[str]:
        return [*self.command, "--root", str(root)]

    def _fill_root(self, root: Path, base: str) -> None:
        assert self.bases is not None
        self._discard(root)
        root.mkdir(parents=True)
        run_quiet(
            [*self._pybuild(root), "build", "--progress=plain", "-t", BUSYBOX_TAG, str(self.bases.busybox_context)],
            env=self.env,
            cwd=self.cwd,
        )
        if base == DEBIAN_TAG:
            assert self.bases.debian_tar is not None
            run_quiet(
                [*self._pybuild(root), "import", str(self.bases.debian_tar), DEBIAN_TAG], env=self.env, cwd=self.cwd
            )

    def prepare(self, bases: Bases) -> None:
        """Probe: can this pybuild build the busybox base, and import the Debian one?"""
        self.bases = bases
        probe = self.work / "pybuild-probe"
        self._fill_root(probe, BUSYBOX_TAG)
        if bases.debian_tar is None:
            self.unsupported[DEBIAN_TAG] = "no Debian tarball"
        else:
            try:
                self._fill_root(probe, DEBIAN_TAG)
            except SetupError as error:
                self.unsupported[DEBIAN_TAG] = "pybuild import failed: " + _last_line(str(error))
        self._discard(probe)

    def reset(self, scenario: Scenario) -> None:
        self._fill_root(self.root, scenario.base)

    def cleanup(self, scenario: Scenario) -> None:
        self._discard(self.root)

    def _discard(self, root: Path) -> None:
        """Move a used root into the trash (one rename), which `empty_trash` deletes when the measurements are over.
        Deleting it here would slow down the builds that follow for a minute or more on this machine's ext4 without
        a journal: there, each inode the kernel allocates scans past every inode freed in the last 60 s (360 s while
        its inode-table block is dirty), and the next cold build's files go to the block groups the deleted root's
        files were in (bench/README.md)."""
        if root.exists():
            trash = self.work / TRASH
            trash.mkdir(parents=True, exist_ok=True)
            root.rename(trash / f"{root.name}-{time.time_ns()}")

    def argv(self, scenario: Scenario, context: Path) -> list[str]:
        jobs = [] if self.jobs is None else [f"--jobs={self.jobs}"]
        return [
            *self._pybuild(self.root), "build", "--progress=plain", "--network=none", *jobs,
            "-t", scenario.tag(), str(context),
        ]  # fmt: skip

    def cold_warning(self, log: Path) -> str | None:
        return _unexpected_hits(log, re.compile(r"^#(\d+) \[[^\]]*\] (.*)$"), re.compile(r"^#(\d+) CACHED"))


def empty_trash(work: Path) -> None:
    """Delete the roots `PybuildEngine` set aside (at the end of a run, and at the start, what an interrupted one
    left)."""
    trash = work / TRASH
    if trash.exists():
        _remove_tree(trash)


def _unexpected_hits(log: Path, header: re.Pattern[str], hit: re.Pattern[str]) -> str | None:
    """Cache hits in a cold build, except on an instruction that an earlier stage of the same build already ran
    (multi-stage's three identical `COPY early.txt` share one result in every engine). With a group for a step
    number (pybuild's `#5 ...` / `#5 CACHED`) hits are matched to headers by number, else to the latest header."""
    seen: list[str] = []
    by_number: dict[str, str] = {}
    unexpected: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        found = header.search(line)
        if found:
            number, text = (found.group(1), found.group(2)) if header.groups == 2 else ("", found.group(1))
            by_number[number] = text
            seen.append(text)
            continue
        found = hit.search(line)
        if found:
            text = by_number.get(found.group(1) if hit.groups else "", "?")
            if seen.count(text) < 2:
                unexpected.append(text)
    if not unexpected:
        return None
    return f"{len(unexpected)} step(s) came from cache, first: {unexpected[0][:60]}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError:
        # A root may hold read-only dirs or a leftover mount; rm copes with the former, and says so for the latter.
        run_quiet(["rm", "-rf", "--one-file-system", str(path)])


def pybuild_command(spec: str) -> list[str]:
    return shlex.split(spec)
