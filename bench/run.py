#!/usr/bin/env python3
"""Time pybuild beside Docker's classic builder and buildah on the shared benchmark scenarios.

For each scenario and each of N runs, four measurements, each taken for every engine before the next one starts
(interleaved, engine order rotated per run): a. cold, b. no-op rebuild, c. after a line is appended to the late
file, d. after a line is appended to the early file. Medians and pybuild ÷ engine ratios go to stdout and to
bench/results/latest.md (raw times to latest.json). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from engines import Bases, BuildahEngine, DockerEngine, Engine, PybuildEngine, empty_trash, pybuild_command
from report import MEASUREMENTS, Results, cpu_table, fmt_seconds, goals, goals_issue14, markdown_table, rss_table
from scenarios import (
    DEBIAN_TAG,
    DEBIAN_TAR,
    DEFAULT_BENCH,
    MAKE_SCENARIOS,
    SCENARIOS,
    SHARED_SCENARIOS,
    Scenario,
    append_line,
    ensure_debian_tar,
    ensure_generated,
)
from timing import SetupError, run_quiet, run_timed

ENGINES = ("pybuild", "docker", "buildah")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenarios",
        default=",".join(SHARED_SCENARIOS),
        help=f"comma-separated (default: %(default)s; known: {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (default: %(default)s)")
    parser.add_argument(
        "--bench",
        type=Path,
        default=Path(os.environ.get("BENCH", str(DEFAULT_BENCH))),
        help="scratch folder for scenarios, engine stores and logs (default: $BENCH or %(default)s)",
    )
    parser.add_argument(
        "--pybuild",
        # What the installed `pybuild` script runs: entry() itself, without runpy's start-up.
        default=f"{sys.executable} -c 'from buildkit_py.cli.main import entry; entry()'",
        help="the pybuild command, run with this checkout on PYTHONPATH (default: %(default)s)",
    )
    parser.add_argument(
        "--make-scenarios",
        type=Path,
        default=MAKE_SCENARIOS,
        help="the scenario generator (default: %(default)s)",
    )
    parser.add_argument("--regenerate", action="store_true", help="regenerate the scenarios even if present")
    parser.add_argument(
        "--debian-tar",
        type=Path,
        default=DEBIAN_TAR,
        help="cached debootstrap rootfs tarball, made once if missing (default: %(default)s)",
    )
    parser.add_argument(
        "--extra-jobs",
        type=int,
        default=3,
        help="multi-stage also runs buildah and pybuild with --jobs=N (0: don't; default: %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before one build is killed")
    parser.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "results" / "latest.md",
        help="Markdown result (default: %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep each scenario's images and caches afterwards")
    parser.add_argument(
        "--keep-trash",
        action="store_true",
        help="leave the pybuild roots set aside in $BENCH/work/trash (by default deleted at the start and the end):"
        " for runs back to back, each unslowed by the last one's deletion; delete the folder when done",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="run pybuild from the checkout itself, not from a copy of buildkit_py/ taken at the start",
    )
    args = parser.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.engines = [e for e in args.engines.split(",") if e]
    for s in args.scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    for e in args.engines:
        if e not in ENGINES:
            parser.error(f"unknown engine {e!r} (known: {', '.join(ENGINES)})")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.bench.resolve().is_relative_to(REPO):
        parser.error("--bench must be outside the repository (the contexts are large)")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def source_state() -> str:
    """HEAD, and whether buildkit_py/ has uncommitted changes (others commit into this checkout while we run)."""
    head = run_quiet(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False).stdout.strip() or "?"
    changes = run_quiet(["git", "-C", str(REPO), "status", "--porcelain", "--", "buildkit_py"], check=False).stdout
    return head + (" + uncommitted changes in buildkit_py/" if changes.strip() else "")


def freeze_source(work: Path) -> Path:
    """A copy of buildkit_py/ taken now, so that a commit landing during a long run doesn't change what is timed."""
    dest = work / "src"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(REPO / "buildkit_py", dest / "buildkit_py", ignore=shutil.ignore_patterns("__pycache__"))
    # Installed code has its bytecode compiled; without it every build would compile dozens of modules again.
    run_quiet([sys.executable, "-m", "compileall", "-q", str(dest / "buildkit_py")])
    return dest


def make_engines(args: argparse.Namespace, work: Path, source: Path) -> dict[str, list[Engine]]:
    """Engine name (as in --engines) -> its variants; the --jobs variants only join the multi-stage scenario.
    pybuild runs with `source` first on PYTHONPATH and as its working directory."""
    engines: dict[str, list[Engine]] = {}
    env = dict(os.environ)
    # Set in some shells; it would make every pybuild run compile the modules that have no bytecode yet.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH", "")) if p)
    for name in args.engines:
        if name == "docker":
            engines[name] = [DockerEngine(work)]
        elif name == "buildah":
            engines[name] = [BuildahEngine(work, jobs=1)]
            if args.extra_jobs:
                engines[name].append(BuildahEngine(work, jobs=args.extra_jobs))
        elif name == "pybuild":
            command = pybuild_command(args.pybuild)
            engines[name] = [PybuildEngine(work, env=env, cwd=source, command=command)]
            if args.extra_jobs:
                engines[name].append(PybuildEngine(work, env=env, cwd=source, command=command, jobs=args.extra_jobs))
    return engines


def variants_for(scenario: Scenario, engines: dict[str, list[Engine]]) -> list[Engine]:
    chosen: list[Engine] = []
    for variants in engines.values():
        chosen.append(variants[0])
        if scenario.name == "multi-stage":
            chosen.extend(variants[1:])
    return chosen


def measure(
    engine: Engine,
    scenario: Scenario,
    measurement: str,
    run: int,
    args: argparse.Namespace,
    results: Results,
) -> None:
    context = scenario.context(args.bench)
    key = (scenario.name, engine.label, measurement)
    log_path = args.bench / "logs" / scenario.name / f"{engine.label.replace(' ', '_')}-{measurement}-{run}.log"
    try:
        if measurement == "a":
            engine.reset(scenario)
        engine.before_build(scenario)
    except SetupError as error:
        results.failures.setdefault(key, []).append(f"set-up: {error}")
        log(f"  {measurement}. {engine.label}: SET-UP FAILED: {str(error).splitlines()[0]}")
        return
    timing = run_timed(engine.argv(scenario, context), log_path, env=engine.env, cwd=engine.cwd, timeout=args.timeout)
    engine.after_build(scenario, log_path)
    if timing.returncode != 0 or timing.timed_out:
        why = "timed out" if timing.timed_out else f"exit status {timing.returncode}"
        results.failures.setdefault(key, []).append(f"{why}, see {log_path}")
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        log(f"  {measurement}. {engine.label}: FAILED ({why}) {fmt_seconds(timing.seconds)} s: " + " | ".join(tail))
        return
    results.seconds.setdefault(key, []).append(timing.seconds)
    results.peak_rss_kib.setdefault(key, []).append(timing.peak_rss_kib)
    results.cpu_seconds.setdefault(key, []).append(timing.cpu_seconds)
    extra = ""
    if measurement == "a":
        warning = engine.cold_warning(log_path)
        if warning:
            results.notes.append(f"{scenario.name}, {engine.label}, cold run {run}: {warning} (reset incomplete?)")
            extra = f"  WARNING: {warning}"
    rss = f"  peak RSS {timing.peak_rss_kib / 1024:.0f} MiB" if engine.label.startswith("pybuild") else ""
    log(
        f"  {measurement}. {engine.label}: {fmt_seconds(timing.seconds)} s, CPU {fmt_seconds(timing.cpu_seconds)} s{rss}{extra}"
    )


def run_scenario(scenario: Scenario, engines: list[Engine], args: argparse.Namespace, results: Results) -> None:
    context = scenario.context(args.bench)
    for engine in engines:
        results.add_row(scenario.name, engine.label)
    for run in range(1, args.runs + 1):
        shift = (run - 1) % len(engines)
        order = engines[shift:] + engines[:shift]  # rotated so no engine always follows the same one
        for measurement in MEASUREMENTS:
            if measurement == "c":
                append_line(context / scenario.late, f"late change {run} {time.time_ns()}")
            elif measurement == "d":
                append_line(context / scenario.early, f"early change {run} {time.time_ns()}")
            log(f"{scenario.name} run {run}/{args.runs} {measurement}.")
            for engine in order:
                measure(engine, scenario, measurement, run, args, results)
    if not args.keep:
        for engine in engines:
            try:
                engine.cleanup(scenario)
            except SetupError as error:
                log(f"  clean-up of {engine.label} failed: {error}")


def describe_machine(args: argparse.Namespace, source: str) -> list[str]:
    def out(argv: list[str]) -> str:
        try:
            return run_quiet(argv, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    return [
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}; {os.cpu_count()} CPUs; {platform.release()}",
        f"- pybuild: `{args.pybuild}`, buildkit_py/ {source}; Python {platform.python_version()}",
        (
            f"- docker: {out(['docker', 'version', '--format', '{{.Server.Version}}'])} classic builder "
            "(`DOCKER_BUILDKIT=0 docker build --network=none`)"
        ),
        (
            f"- buildah: {out(['buildah', '--version'])} (`bud --isolation=oci --layers --pull=never --network=none`, "
            "overlay, own storage root)"
        ),
        f"- medians of {args.runs} run(s); seconds, wall clock (perf_counter around the build command)",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.bench.mkdir(parents=True, exist_ok=True)
    work = args.bench / "work"
    scenarios = [SCENARIOS[name] for name in args.scenarios]
    log(f"scenarios under {args.bench}")
    ensure_generated(args.make_scenarios, args.bench, args.scenarios, args.regenerate)

    results = Results()
    debian_tar: Path | None = None
    if any(s.base == DEBIAN_TAG for s in scenarios):
        try:
            log(f"Debian base: {args.debian_tar}")
            debian_tar = ensure_debian_tar(args.debian_tar)
        except SetupError as error:
            results.notes.append(f"debian-app skipped: {error}")
            scenarios = [s for s in scenarios if s.base != DEBIAN_TAG]
    bases = Bases(args.bench / "base-busybox", debian_tar)

    started_at = source_state()
    if args.live:
        source, source_note = REPO, f"live from the checkout, at {started_at} when the run started"
    else:
        source, source_note = freeze_source(work), f"copied at the start from {started_at}"
    log(f"pybuild: buildkit_py/ {source_note}")
    if not args.keep_trash:
        empty_trash(work)  # what an interrupted run set aside
    engines = make_engines(args, work, source)
    for name, variants in list(engines.items()):
        for engine in list(variants):
            log(f"preparing {engine.label}")
            try:
                engine.prepare(bases)
            except SetupError as error:
                results.notes.append(f"{engine.label} skipped: {str(error).strip().splitlines()[-1]}")
                log(f"  {engine.label} skipped: {error}")
                variants.remove(engine)
        if not variants:
            del engines[name]

    for scenario in scenarios:
        chosen = []
        for engine in variants_for(scenario, engines):
            why = engine.unsupported.get(scenario.base)
            if why:
                results.notes.append(f"{scenario.name}: {engine.label} skipped: {why}")
            else:
                chosen.append(engine)
        if chosen:
            run_scenario(scenario, chosen, args, results)
    if not args.keep_trash:
        log("deleting the pybuild roots set aside")
        empty_trash(work)

    text = "\n".join(
        [
            "# pybuild beside Docker's classic builder and buildah",
            "",
            *describe_machine(args, source_note),
            "",
            markdown_table(results),
            "",
            (
                "pybuild ÷ engine: pybuild's median over this row's (below 1: pybuild is faster); "
                "a `--jobs=N` row is compared with pybuild `--jobs=N`."
            ),
            "",
        ]
    )
    rss = rss_table(results)
    if rss:
        text += (
            "\n## pybuild peak RSS (MB, largest of the runs; wait4 ru_maxrss of the pybuild process)\n\n" + rss + "\n"
        )
    text += (
        "\n## CPU seconds (user + system, median; the timed process and the children it waited for: for docker the"
        " client only, the daemon does the build)\n\n" + cpu_table(results) + "\n"
    )
    text += "\n## Goals of issue 14\n\n" + "\n".join(goals_issue14(results, SHARED_SCENARIOS)) + "\n"
    text += "\n## Goals of issue 3\n\n" + "\n".join(goals(results)) + "\n"
    if args.live and source_state() != started_at:
        results.notes.append(
            f"buildkit_py/ changed during the run: {started_at} at the start, {source_state()} at the end"
        )
    failures = [f"- {s}, {e}, {m}.: {'; '.join(why)}" for (s, e, m), why in results.failures.items()]
    if results.notes or failures:
        text += "\n## Notes\n\n" + "\n".join([f"- {n}" for n in results.notes] + failures) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    raw = {
        "seconds": {"|".join(k): v for k, v in results.seconds.items()},
        "peak_rss_kib": {"|".join(k): v for k, v in results.peak_rss_kib.items()},
        "cpu_seconds": {"|".join(k): v for k, v in results.cpu_seconds.items()},
        "failures": {"|".join(k): v for k, v in results.failures.items()},
        "notes": results.notes,
    }
    args.output.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    log(f"written to {args.output}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
