#!/usr/bin/env python3
"""Bytes on disk (issue 14): pybuild's store beside what Docker's daemon keeps for the same images.

Each scenario is built by pybuild into a fresh `--root` and by Docker's classic builder (`DOCKER_BUILDKIT=0`), both
from a private copy of its context whose FROM lines name base images of this run (unique tags on the shared daemon).
Measured after each phase: a. the cold build; b. `--rebuilds` more builds, each after a line appended to the late file
(the replaced layers stay as cache in both engines); c. with a registry (`docker-registry` installed), after `save`
to a file and `push` to a registry on 127.0.0.1 run here. Bytes are `du`'s: allocated blocks, each inode once.

pybuild: the whole store root. Docker: for every image the builds printed (the cached steps included) and the base
images, the overlay2 folders of its layer chain, their layerdb entries (which hold the tar-split), the image configs
and their metadata, and what a push records. Everything this run creates in Docker is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from diskuse import docker_inspect, docker_share, measure_parts, pybuild_parts
from scenarios import (
    BUSYBOX_TAG,
    DEBIAN_TAG,
    DEBIAN_TAR,
    MAKE_SCENARIOS,
    SCENARIOS,
    Scenario,
    append_line,
    ensure_debian_tar,
    ensure_generated,
)
from timing import SetupError, run_quiet

DOCKER = "/usr/bin/docker"
_DOCKER_IMAGE_ID = re.compile(r"^(?: ---> |Successfully built )([0-9a-f]{12})\s*$", re.MULTILINE)
_LINK_AT_LEAST = 1 << 20  # context files this big are hard-linked into the private copy, smaller ones copied


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all)")
    parser.add_argument(
        "--bench",
        type=Path,
        default=Path(os.environ.get("BENCH", "/var/tmp/pybuild-bench")),
        help="scenarios are generated here; this run works in BENCH/work/disk-<id> (default: $BENCH or %(default)s)",
    )
    parser.add_argument("--rebuilds", type=int, default=3, help="late-change rebuilds after the cold build")
    parser.add_argument("--no-push", action="store_true", help="skip the save and push phase")
    parser.add_argument(
        "--pybuild",
        default=f"{sys.executable} -m buildkit_py.cli.main",
        help="the pybuild command, run with this checkout first on PYTHONPATH (default: %(default)s)",
    )
    parser.add_argument(
        "--make-scenarios",
        type=Path,
        default=MAKE_SCENARIOS,
        help="the scenario generator (default: %(default)s)",
    )
    parser.add_argument(
        "--debian-tar",
        type=Path,
        default=DEBIAN_TAR,
        help="debootstrap rootfs tarball, made once if missing (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "results" / "disk.md",
        help="Markdown result, and the figures as JSON beside it (default: %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the pybuild roots and the work folder")
    args = parser.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    for name in args.scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    if args.rebuilds < 0:
        parser.error("--rebuilds must be 0 or more")
    if args.bench.resolve().is_relative_to(REPO):
        parser.error("--bench must be outside the repository (the contexts are large)")
    return args


def run_logged(
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    seen: Callable[[str], None] | None = None,
) -> str:
    """Run a set-up or build command with its output to `log_path`; returns the output, SetupError on failure.
    `seen` is given the output first, failed or not."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    output = result.stdout + result.stderr
    log_path.write_text("$ " + " ".join(argv) + "\n" + output)
    if seen is not None:
        seen(output)
    if result.returncode != 0:
        raise SetupError(f"{' '.join(argv)}: exit status {result.returncode}, see {log_path}\n{output[-1500:]}")
    return output


# -- the context, with base images of this run ----------------------------------------------------------------


def private_context(scenario: Scenario, bench: Path, work: Path, bases: dict[str, str]) -> Path:
    """A copy of the scenario's context (large files hard-linked, so it costs no space) whose Dockerfile names
    `bases[tag]` for each shared base tag."""
    source = scenario.context(bench)
    target = work / "contexts" / scenario.name

    def copy(src: str, dst: str) -> None:
        if os.stat(src).st_size >= _LINK_AT_LEAST:
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=copy, symlinks=True)
    dockerfile = target / "Dockerfile"
    text = dockerfile.read_text()
    for shared, own in bases.items():
        text = re.sub(rf"^(FROM\s+){re.escape(shared)}(\s|$)", rf"\g<1>{own}\g<2>", text, flags=re.MULTILINE)
    dockerfile.write_text(text)
    return target


# -- the engines -------------------------------------------------------------------------------------------------


@dataclass
class DockerSide:
    """Docker's classic builder on the shared daemon: every image this run makes is recorded and removed at the end."""

    prefix: str
    logs: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ, DOCKER_BUILDKIT="0"))
    base_ids: dict[str, list[str]] = field(default_factory=dict)  # own base tag -> the ids it is made of
    made: list[str] = field(default_factory=list)  # every id and tag this run made, in order
    scenario_ids: dict[str, list[str]] = field(default_factory=dict)

    def _build(self, context: Path, tag: str, log_path: Path, *options: str) -> list[str]:
        # --force-rm: a failed step's container goes too, else it would pin its image
        argv = [DOCKER, "build", "--network=none", "--force-rm", *options, "-t", tag, str(context)]
        ids: list[str] = []

        def record(output: str) -> None:
            ids.extend(dict.fromkeys(_DOCKER_IMAGE_ID.findall(output)))
            self.made.extend([*ids, tag])

        run_logged(argv, log_path, env=self.env, seen=record)
        return ids

    def prepare(self, busybox_context: Path, debian_tar: Path | None) -> None:
        tag = f"{self.prefix}/busybox:latest"
        # --no-cache: this run's base is its own image, not one another user's builds left in the daemon
        self.base_ids[BUSYBOX_TAG] = self._build(busybox_context, tag, self.logs / "docker-base.log", "--no-cache")
        if debian_tar is not None:
            tag = f"{self.prefix}/debian:bookworm"
            image_id = run_quiet([DOCKER, "import", str(debian_tar), tag]).stdout.strip()
            self.made.extend([image_id, tag])
            self.base_ids[DEBIAN_TAG] = [image_id]

    def build(self, scenario: Scenario, context: Path, log_path: Path) -> None:
        ids = self._build(context, f"{self.prefix}/{scenario.name}:latest", log_path)
        self.scenario_ids.setdefault(scenario.name, []).extend(ids)

    def measure(self, scenario: Scenario) -> tuple[int, dict[str, int]]:
        ids = [*self.base_ids.get(BUSYBOX_TAG, []), *self.scenario_ids.get(scenario.name, [])]
        if scenario.base == DEBIAN_TAG:
            ids.extend(self.base_ids.get(DEBIAN_TAG, []))
        return measure_parts(docker_share(docker_inspect(ids, DOCKER)))

    def save_and_push(self, scenario: Scenario, registry: str, work: Path) -> None:
        tag = f"{self.prefix}/{scenario.name}:latest"
        archive = work / "docker-save.tar"
        run_quiet([DOCKER, "save", "-o", str(archive), tag])
        archive.unlink()
        remote = f"{registry}/{tag}"
        run_quiet([DOCKER, "tag", tag, remote])
        self.made.append(remote)
        run_logged([DOCKER, "push", remote], self.logs / scenario.name / "docker-push.log")

    def remove(self, keep: Sequence[str] = ()) -> None:
        """`docker rmi` of what this run made, newest first, tags before ids; `keep` (ids or tags) stays."""
        doomed = [name for name in dict.fromkeys(reversed(self.made)) if name not in keep]
        for _ in range(3):  # a parent image goes once its children have
            if not doomed:
                break
            run_quiet([DOCKER, "rmi", *doomed], check=False)
            doomed = [
                name for name in doomed if run_quiet([DOCKER, "image", "inspect", name], check=False).returncode == 0
            ]
        self.made = [name for name in self.made if name in keep or name in doomed]


@dataclass
class PybuildSide:
    """pybuild with a fresh root per scenario, holding this run's bases."""

    command: list[str]
    root: Path
    logs: Path
    env: dict[str, str]

    def run(self, log_path: Path, *args: str) -> str:
        return run_logged([*self.command, "--root", str(self.root), *args], log_path, env=self.env, cwd=REPO)

    def prepare(
        self, bases: dict[str, str], busybox_context: Path, debian_tar: Path | None, scenario: Scenario
    ) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        base_log = self.logs / scenario.name / "pybuild-base.log"
        self.run(base_log, "build", "--progress=plain", "-t", bases[BUSYBOX_TAG], str(busybox_context))
        if scenario.base == DEBIAN_TAG:
            assert debian_tar is not None
            self.run(base_log.with_name("pybuild-import.log"), "import", str(debian_tar), bases[DEBIAN_TAG])

    def build(self, scenario: Scenario, tag: str, context: Path, log_path: Path) -> None:
        self.run(log_path, "build", "--progress=plain", "--network=none", "-t", tag, str(context))

    def measure(self) -> tuple[int, dict[str, int]]:
        return measure_parts(pybuild_parts(self.root))

    def save_and_push(self, scenario: Scenario, tag: str, registry: str, work: Path) -> None:
        archive = work / "pybuild-save.tar"
        self.run(self.logs / scenario.name / "pybuild-save.log", "save", "-o", str(archive), tag)
        archive.unlink()
        remote = f"{registry}/{tag}"
        self.run(self.logs / scenario.name / "pybuild-push.log", "tag", tag, remote)
        self.run(self.logs / scenario.name / "pybuild-push.log", "push", remote)


# -- a registry on 127.0.0.1 -------------------------------------------------------------------------------------

_LISTENING = re.compile(r'msg="listening on 127\.0\.0\.1:(\d+)[,"]')


@contextmanager
def local_registry(work: Path) -> Iterator[str | None]:
    """docker-registry serving a folder of `work` on a port it picks; yields `127.0.0.1:PORT`, or None without it."""
    if shutil.which("docker-registry") is None:
        yield None
        return
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
        "http": {"addr": "127.0.0.1:0", "secret": uuid.uuid4().hex},
    }
    (work / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log_path = work / "registry.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(["docker-registry", "serve", str(work / "config.yml")], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while not (found := _LISTENING.search(log_path.read_text(errors="replace"))):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f"docker-registry did not start: {log_path.read_text(errors='replace')[-1000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{found.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- the run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    scenario: str
    phase: str
    pybuild: int
    docker: int
    pybuild_parts: dict[str, int]
    docker_parts: dict[str, int]


def measure_scenario(
    scenario: Scenario, args: argparse.Namespace, docker: DockerSide, pybuild: PybuildSide, registry: str | None,
    bases: dict[str, str], work: Path, debian_tar: Path | None,
) -> list[Measurement]:  # fmt: skip
    logs = work / "logs" / scenario.name
    context = private_context(scenario, args.bench, work, bases)
    tag = f"{docker.prefix}/{scenario.name}:latest"
    pybuild.prepare(bases, args.bench / "base-busybox", debian_tar, scenario)
    found: list[Measurement] = []

    def measure(phase: str) -> None:
        py_total, py_parts = pybuild.measure()
        docker_total, docker_parts = docker.measure(scenario)
        found.append(Measurement(scenario.name, phase, py_total, docker_total, py_parts, docker_parts))
        log(f"  {phase}: pybuild {mb(py_total)} MB, docker {mb(docker_total)} MB")

    log(f"{scenario.name}: cold")
    pybuild.build(scenario, tag, context, logs / "pybuild-cold.log")
    docker.build(scenario, context, logs / "docker-cold.log")
    measure("a. cold")
    if args.rebuilds:
        for number in range(1, args.rebuilds + 1):
            append_line(context / scenario.late, f"late change {number} {uuid.uuid4().hex}")
            pybuild.build(scenario, tag, context, logs / f"pybuild-late-{number}.log")
            docker.build(scenario, context, logs / f"docker-late-{number}.log")
        measure(f"b. +{args.rebuilds} late changes")
    if registry is not None:
        pybuild.save_and_push(scenario, tag, registry, work)
        docker.save_and_push(scenario, registry, work)
        measure("c. saved, pushed")
    shutil.rmtree(context)
    return found


def mb(size: int) -> str:
    return f"{size / 1e6:.1f}" if size >= 1e7 else f"{size / 1e6:.2f}"


def ratio(pybuild: int, docker: int) -> str:
    return f"{pybuild / docker:.2f}" if docker else "-"


def report(measurements: list[Measurement], notes: list[str], header: list[str]) -> str:
    lines = [
        *header,
        "",
        "| scenario | phase | pybuild MB | docker MB | pybuild ÷ docker |",
        "|---|---|---:|---:|---:|",
    ]
    for m in measurements:
        lines.append(f"| {m.scenario} | {m.phase} | {mb(m.pybuild)} | {mb(m.docker)} | {ratio(m.pybuild, m.docker)} |")
    for phase in dict.fromkeys(m.phase for m in measurements):
        rows = [m for m in measurements if m.phase == phase]
        py, dk = sum(m.pybuild for m in rows), sum(m.docker for m in rows)
        lines.append(f"| **total** ({len(rows)}) | {phase} | {mb(py)} | {mb(dk)} | {ratio(py, dk)} |")
    last: dict[str, Measurement] = {m.scenario: m for m in measurements}
    lines += ["", "## Where the bytes are (MB), after the last phase", ""]
    lines.append("| engine | part | " + " | ".join(last) + " |")
    lines.append("|---|---|" + "---:|" * len(last))
    for engine in ("pybuild", "docker"):
        by_scenario = [m.pybuild_parts if engine == "pybuild" else m.docker_parts for m in last.values()]
        for part in sorted({p for parts in by_scenario for p in parts}):
            cells = [mb(parts.get(part, 0)) for parts in by_scenario]
            lines.append(f"| {engine} | {part} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = [SCENARIOS[name] for name in args.scenarios]
    args.bench.mkdir(parents=True, exist_ok=True)
    ensure_generated(args.make_scenarios, args.bench, args.scenarios, regenerate=False)
    notes: list[str] = []
    debian_tar = None
    if any(s.base == DEBIAN_TAG for s in scenarios):
        try:
            debian_tar = ensure_debian_tar(args.debian_tar)
        except SetupError as error:
            notes.append(f"debian-app skipped: {error}")
            scenarios = [s for s in scenarios if s.base != DEBIAN_TAG]

    run_id = uuid.uuid4().hex[:10]
    prefix = f"pybuild-disk-{run_id}"
    work = args.bench / "work" / f"disk-{run_id}"
    bases = {BUSYBOX_TAG: f"{prefix}/busybox:latest", DEBIAN_TAG: f"{prefix}/debian:bookworm"}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    docker = DockerSide(prefix, work / "logs")
    measurements: list[Measurement] = []
    failed = False
    log(f"working in {work}; Docker images tagged {prefix}/...")
    try:
        with local_registry(work / "registry") if not args.no_push else _none() as registry:
            if registry is None and not args.no_push:
                notes.append("no docker-registry: the save and push phase was skipped")
            docker.prepare(args.bench / "base-busybox", debian_tar)
            for scenario in scenarios:
                pybuild = PybuildSide(args.pybuild.split(), work / "pybuild" / scenario.name, work / "logs", env)
                try:
                    measurements += measure_scenario(scenario, args, docker, pybuild, registry, bases, work, debian_tar)
                except SetupError as error:
                    failed = True
                    notes.append(f"{scenario.name} failed: {str(error).strip().splitlines()[0]}")
                    log(f"{scenario.name} failed: {error}")
                keep = [i for ids in docker.base_ids.values() for i in ids] + list(bases.values())
                docker.remove(keep=keep)
                if not args.keep:
                    shutil.rmtree(pybuild.root, ignore_errors=True)
    finally:
        docker.remove()
        if docker.made:
            notes.append(f"could not remove from Docker: {' '.join(docker.made)}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    head = run_quiet(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    header = [
        "# Bytes on disk: pybuild's store beside Docker's share of /var/lib/docker",
        "",
        (
            f"`python3 bench/disk.py {' '.join(argv if argv is not None else sys.argv[1:])}` at {head}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}. MB = 10^6 bytes allocated (du), each inode once."
        ),
        "Totals add the scenarios up, each counting its base images (both engines alike).",
    ]
    text = report(measurements, notes, header)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps([m.__dict__ for m in measurements], indent=1) + "\n")
    return 1 if failed else 0


@contextmanager
def _none() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    sys.exit(main())
