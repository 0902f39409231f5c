"""Where the time of a no-op rebuild and of a late change goes (issue 14's profile summary).

    .venv/bin/python bench/rebuild_profile.py [--runs 25] [--scenario tiny]

Builds the scenario once in a fresh store (its base from `$BENCH/base-busybox`, as bench/run.py makes it), then
times, interleaved, the interpreter's start, the imports each kind of rebuild does (the modules a real run of it had
in `sys.modules`, loaded by a process that then ends at once), and the rebuild itself. The
difference between two rows is what that part costs: start-up, imports, and the work. Not a test: prints medians of
wall and CPU time with the date, commit and load.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from scenarios import DEFAULT_BENCH
from timing import run_timed

REPO = Path(__file__).resolve().parents[1]
ENTRY = "from buildkit_py.cli.main import entry; entry()"


def _run(argv: Sequence[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `argv`; its output goes to `log`, and ends the message if it fails."""
    timing = run_timed(argv, log, env=env)
    if timing.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{log.read_text(errors='replace')[-2000:]}")
    return timing.seconds, timing.cpu_seconds


def _imported(argv: Sequence[str], env: dict[str, str]) -> list[str]:
    """The modules a run of the build `argv` names loaded in its own process (not in the sandbox fork server, a fork
    of it), in the order they were loaded: the build runs in-process here and lists `sys.modules` when it ends."""
    script = (
        "import sys\n"
        "from buildkit_py.cli.main import main\n"
        "status = main(sys.argv[1:])\n"
        "sys.stderr.write('\\n'.join(['', 'MODULES', *sys.modules]))\n"
        "raise SystemExit(status)\n"
    )
    arguments = list(argv[argv.index("--root") :])
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{result.stderr[-2000:]}")
    return result.stderr.rsplit("\nMODULES\n", 1)[1].split()


def _import_only(modules: Sequence[str]) -> list[str]:
    lines = ["import importlib, os", f"for name in {list(modules)!r}:"]
    lines += ["    try:", "        importlib.import_module(name)", "    except ImportError:", "        pass"]
    lines.append("os._exit(0)")
    return [sys.executable, "-c", "\n".join(lines)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--scenario", default="tiny")
    parser.add_argument("--bench", type=Path, default=Path(os.environ.get("BENCH", str(DEFAULT_BENCH))))
    args = parser.parse_args()
    scenarios = args.bench / "scenarios"
    if not (scenarios / args.scenario).is_dir():
        raise SystemExit(f"no scenario {args.scenario} under {scenarios}: run bench/run.py once first")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO)
    with tempfile.TemporaryDirectory(prefix="rebuild-profile-", dir="/var/tmp") as scratch:
        root, context = Path(scratch) / "root", Path(scratch) / "context"
        shutil.copytree(scenarios / args.scenario, context)
        pybuild = [sys.executable, "-c", ENTRY, "--root", str(root), "build", "--progress=plain", "--network=none"]
        log = Path(scratch) / "last-run.log"
        _run([*pybuild, "-t", "bench/busybox:latest", str(scenarios.parent / "base-busybox")], env, log)
        build = [*pybuild, "-t", "profile/app:latest", str(context)]
        _run(build, env, log)

        def late_change() -> None:
            with open(context / "late.txt", "a") as late:
                late.write(f"{time.time_ns()}\n")

        noop_modules = _imported(build, env)
        late_change()
        late_modules = _imported(build, env)
        rows: list[tuple[str, list[str], Callable[[], None] | None]] = [
            ("interpreter start (`python -c pass`)", [sys.executable, "-c", "pass"], None),
            (f"+ the no-op's imports ({len(noop_modules)} modules)", _import_only(noop_modules), None),
            ("no-op rebuild", build, None),
            (f"+ a late change's imports ({len(late_modules)} modules)", _import_only(late_modules), None),
            ("late change", build, late_change),
        ]
        times: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in rows}
        for _ in range(args.runs):
            for label, argv, before in rows:
                if before is not None:
                    before()
                times[label].append(_run(argv, env, log))
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M} at {commit.stdout.strip()}, load {os.getloadavg()[0]:.2f}, "
          f"{args.scenario}, medians of {args.runs} runs, {sys.executable}")  # fmt: skip
    print("| | wall ms | CPU ms |\n|---|---|---|")
    for label, measured in times.items():
        wall = statistics.median(m[0] for m in measured) * 1000
        cpu = statistics.median(m[1] for m in measured) * 1000
        print(f"| {label} | {wall:.1f} | {cpu:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
