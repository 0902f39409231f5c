"""`pybuild run --rm IMAGE true` beside `docker run --rm` and `podman run --rm`: median wall time of N runs each,
interleaved, on one busybox image (built by pybuild, loaded into Docker and podman from `pybuild save`); each also
with `--network none` (no slirp4netns for pybuild, no network set-up for Docker).

    python3 bench/run_containers.py [--runs 15] [--root DIR]

Not a test: prints a table and the ratios (issue 13's goal: pybuild at most a third of Docker's time), with the
load average before and after, the date and the commit. pybuild's modules are compiled first (`compileall`), as an
installed package's are: this environment sets PYTHONDONTWRITEBYTECODE, and without bytecode every run would
compile the sources again. Docker is /usr/bin/docker (the 20.10 client of the 20.10 daemon) when present.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def _time(command: list[str]) -> float | None:
    """Wall time of one run, None when it failed (Docker here sometimes answers 127 for a present binary)."""
    start = time.perf_counter()
    done = subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start if done.returncode == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--root", type=Path, default=None, help="pybuild store (default: a fresh temp folder)")
    args = parser.parse_args()

    from helpers import BASE_IMAGE, base_context

    from buildkit_py.builder import build
    from buildkit_py.store import Store

    work = Path(tempfile.mkdtemp(prefix="pybuild-run-bench-"))
    root = args.root or work / "root"
    tag = f"pybuild-bench/run-{uuid.uuid4().hex[:8]}:1"
    with Store(root) as store:
        build(base_context(work), tags=[BASE_IMAGE, tag], store=store)
    compileall.compile_dir(REPO / "buildkit_py", quiet=1)
    pybuild = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root)]
    archive = work / "image.tar"
    subprocess.run([*pybuild, "save", "-o", str(archive), tag], check=True, cwd=REPO)
    engines: dict[str, list[str]] = {
        "pybuild": [*pybuild, "run", "--rm", tag, "true"],
        "pybuild --network none": [*pybuild, "run", "--rm", "--network", "none", tag, "true"],
    }
    docker = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")
    if docker:
        subprocess.run([docker, "load", "-i", str(archive)], check=True, stdout=subprocess.DEVNULL)
        engines["docker"] = [docker, "run", "--rm", tag, "true"]
        engines["docker --network none"] = [docker, "run", "--rm", "--network", "none", tag, "true"]
    if shutil.which("podman"):
        subprocess.run(["podman", "load", "-i", str(archive)], check=True, stdout=subprocess.DEVNULL)
        engines["podman"] = ["podman", "run", "--rm", f"localhost/{tag}", "true"]
    load_before = os.getloadavg()
    try:
        for name, command in list(engines.items()):
            warm = subprocess.run(command, capture_output=True, text=True, check=False)  # warm caches
            if warm.returncode != 0:
                print(f"{name} cannot run the image here: {warm.stderr.strip()[-300:]}", file=sys.stderr)
                del engines[name]
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(args.runs):
            for name, command in engines.items():
                seconds = _time(command)
                if seconds is not None:
                    times[name].append(seconds)
    finally:
        if docker and "docker" in engines:
            subprocess.run([docker, "rmi", "-f", tag], check=False, capture_output=True)
        if "podman" in engines:
            subprocess.run(["podman", "rmi", "-f", tag], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    times = {name: values for name, values in times.items() if values}
    medians = {name: statistics.median(values) for name, values in times.items()}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True, cwd=REPO
    ).stdout
    print(
        f"{datetime.date.today()}, pybuild at {commit.strip()}, load average {load_before[0]:.2f} before and "
        f"{load_after[0]:.2f} after ({os.cpu_count()} CPUs)\n"
    )
    print(f"`run --rm IMAGE true`, median of {args.runs} interleaved runs (seconds)\n")
    print("| engine | runs that succeeded | median | min | max | pybuild ÷ engine (same network) |")
    print("|---|---|---|---|---|---|")
    for name, values in times.items():
        mine = "pybuild --network none" if "none" in name else "pybuild"
        ratio = medians[mine] / medians[name]
        line = f"| {name} | {len(values)}/{args.runs} | {medians[name]:.3f} | {min(values):.3f} | {max(values):.3f} "
        print(line + f"| {ratio:.2f} |")
    if "docker" in medians and "pybuild" in medians:
        verdict = "PASS" if medians["pybuild"] <= medians["docker"] / 3 else "FAIL"
        print(
            f"\n{verdict}: pybuild at most a third of Docker's time ({medians['pybuild']:.3f} s vs {medians['docker']:.3f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
