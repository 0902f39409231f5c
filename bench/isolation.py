"""What the sandbox's isolation costs a RUN step (issue 8): the same ten-RUN Dockerfile built with `--no-cache`
under pybuild's default hardening and network (own network namespace + slirp4netns), with `--network=none`, and with
`--network=none` and every step `RUN --security=insecure` (no seccomp filter, every capability, no masked or
read-only kernel paths, /dev not nodev), beside Docker's classic builder with `--network=none`.

    python3 bench/isolation.py [--runs 7] [--steps 10]

Not a test: prints median wall times of interleaved runs and the cost per step of each layer of isolation
(the difference of two variants' medians divided by the number of RUN steps), with the date, commit and load.
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

DOCKER = "/usr/bin/docker"


def dockerfile(base: str, steps: int, insecure: bool) -> str:
    flag = "--security=insecure " if insecure else ""
    lines = [f"FROM {base}"]
    lines += [f"RUN {flag}echo step {number} > /step-{number}" for number in range(steps)]
    return "\n".join(lines) + "\n"


def write_context(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text(text)
    return folder


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()

    from helpers import BASE_IMAGE, base_context

    from buildkit_py.builder import build
    from buildkit_py.store import Store

    work = Path(tempfile.mkdtemp(prefix="pybuild-isolation-bench-"))
    root = work / "root"
    with Store(root) as store:
        build(base_context(work), tags=[BASE_IMAGE], store=store)
    compileall.compile_dir(REPO / "buildkit_py", quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed package: bytecode compiled once, then used
    pybuild = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "build", "--no-cache", "-q"]
    hardened = write_context(work / "hardened", dockerfile(BASE_IMAGE, args.steps, insecure=False))
    insecure = write_context(work / "insecure", dockerfile(BASE_IMAGE, args.steps, insecure=True))
    empty = write_context(work / "empty", dockerfile(BASE_IMAGE, 0, insecure=False))
    tag = f"pybuild-isolation/{uuid.uuid4().hex[:8]}"
    variants: dict[str, list[str]] = {
        "pybuild, no RUN step": [*pybuild, "-t", f"{tag}:empty", str(empty)],
        "pybuild (default: hardened, own network + slirp4netns)": [*pybuild, "-t", f"{tag}:a", str(hardened)],
        "pybuild --network=none (hardened)": [*pybuild, "--network=none", "-t", f"{tag}:b", str(hardened)],
        "pybuild --network=none, RUN --security=insecure": [
            *pybuild,
            "--network=none",
            "--allow",
            "security.insecure",
            "-t",
            f"{tag}:c",
            str(insecure),
        ],
    }
    docker_tag = f"{tag}-docker:1"
    if not args.no_docker and os.access(DOCKER, os.X_OK):
        archive = work / "base.tar"
        subprocess.run([*pybuild[:5], "save", "-o", str(archive), BASE_IMAGE], check=True, cwd=REPO, env=env)
        subprocess.run([DOCKER, "load", "-i", str(archive)], check=True, stdout=subprocess.DEVNULL)
        docker_env = dict(env, DOCKER_BUILDKIT="0")
        variants["docker (classic) --network=none"] = [
            DOCKER, "build", "-q", "--no-cache", "--force-rm", "--network=none", "-t", docker_tag, str(hardened),
        ]  # fmt: skip
    else:
        docker_env = env
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for name, command in variants.items():  # a warm-up of each
            timed(command, docker_env if name.startswith("docker") else env)
        for _ in range(args.runs):
            for name, command in variants.items():
                times[name].append(timed(command, docker_env if name.startswith("docker") else env))
    finally:
        if "docker (classic) --network=none" in variants:
            subprocess.run([DOCKER, "rmi", "-f", docker_tag, BASE_IMAGE], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    medians = {name: statistics.median(values) for name, values in times.items()}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    print(
        f"{datetime.date.today()}, pybuild at {commit}, load average {load_before[0]:.2f} before and "
        f"{load_after[0]:.2f} after ({os.cpu_count()} CPUs); {args.steps} RUN steps, `build --no-cache`, "
        f"median of {args.runs} interleaved runs (seconds)\n"
    )
    print("| variant | median | min | max | per RUN step above no step |")
    print("|---|---|---|---|---|")
    floor = medians["pybuild, no RUN step"]
    for name, values in times.items():
        per_step = "" if name.startswith(("pybuild, no", "docker")) else f"{(medians[name] - floor) / args.steps:.3f}"
        print(f"| {name} | {medians[name]:.3f} | {min(values):.3f} | {max(values):.3f} | {per_step} |")
    default, none, insecure_median = (
        medians["pybuild (default: hardened, own network + slirp4netns)"],
        medians["pybuild --network=none (hardened)"],
        medians["pybuild --network=none, RUN --security=insecure"],
    )
    print(f"\nslirp4netns and the network namespace, per step: {(default - none) / args.steps * 1000:.1f} ms")
    print(
        f"seccomp, capabilities, masked paths, nodev, per step: {(none - insecure_median) / args.steps * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
