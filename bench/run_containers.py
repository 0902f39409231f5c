"""`pybuild run --rm IMAGE true` beside `docker run --rm` and `podman run --rm`: median wall time of N runs each,
interleaved, on one busybox image (built by pybuild, loaded into Docker and podman from `pybuild save`).

    python3 bench/run_containers.py [--runs 15] [--root DIR]

Not a test: prints a table and the ratios (issue 13's goal: pybuild at most a third of Docker's time).
"""

from __future__ import annotations

import argparse
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
    pybuild = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root)]
    archive = work / "image.tar"
    subprocess.run([*pybuild, "save", "-o", str(archive), tag], check=True, cwd=REPO)
    engines: dict[str, list[str]] = {"pybuild": [*pybuild, "run", "--rm", tag, "true"]}
    if shutil.which("docker"):
        subprocess.run(["docker", "load", "-i", str(archive)], check=True, stdout=subprocess.DEVNULL)
        engines["docker"] = ["docker", "run", "--rm", tag, "true"]
    if shutil.which("podman"):
        subprocess.run(["podman", "load", "-i", str(archive)], check=True, stdout=subprocess.DEVNULL)
        engines["podman"] = ["podman", "run", "--rm", f"localhost/{tag}", "true"]
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
        if "docker" in engines:
            subprocess.run(["docker", "rmi", "-f", tag], check=False, capture_output=True)
        if "podman" in engines:
            subprocess.run(["podman", "rmi", "-f", tag], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    times = {name: values for name, values in times.items() if values}
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"`run --rm IMAGE true`, median of {args.runs} interleaved runs (seconds)\n")
    print("| engine | runs that succeeded | median | min | max | pybuild ÷ engine |")
    print("|---|---|---|---|---|---|")
    for name, values in times.items():
        ratio = medians["pybuild"] / medians[name]
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
