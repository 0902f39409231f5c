"""How much `RUN --mount=type=cache,target=/root/.cache/pip` saves: a Debian base with Python, `pip install` of 20
packages from PyPI, then one requirement added. The rebuild with the cache mount is timed beside the rebuild of the
same Dockerfile without it (where pip downloads everything again). Not a test: it needs the network and takes minutes.

    python3 bench/cache_mount.py [--runs 3] [--index direct|mirror|both] [--bench DIR] [--debian-tar FILE] [--ca FILE]

The base is a `debootstrap --variant=minbase --include=python3,python3-pip,python3-dev,build-essential bookworm`
tree (a compiler, as images that pip-install C extensions have), made once (untimed) and kept as a tar; pybuild imports it into a fresh store. A RUN step sees none of the host's pip settings, so what pip
needs to reach the index is passed on: the index as PIP_INDEX_URL, and a CA bundle (`--ca`, default $PIP_CERT or the
host's bundle, needed where TLS is intercepted) through a bind mount of the build context.

Two ways to the index are measured (`--index`): `direct`, PyPI as this network serves it, and `mirror`, through
bench/pypi_mirror.py on this host, which sends PyPI's own caching headers: a TLS-intercepting proxy that strips them
leaves pip's cache only the wheels pip builds from source packages, as on this project's machine.

Each run adds a requirement no earlier run added, so that neither variant's step is a layer-cache hit; the two
variants alternate, and only the rebuild after the added requirement is timed. The goal (issue 11): the rebuild
with the cache mount at least 3x faster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pypi_mirror import PypiMirror

REPO = Path(__file__).resolve().parents[1]
BASE_TAG = "bench/debian-python:latest"
# Wheels, and packages published only as source, which pip builds into wheels (in an isolated environment it first
# installs setuptools into; crcmod and uwsgi compile C): pip's cache keeps the downloads and the wheels it built.
REQUIREMENTS = (
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset-normalizer",
    "python-dateutil",
    "six",
    "attrs",
    "click",
    "jinja2",
    "markupsafe",
    "pyyaml",
    "packaging",
    "docopt",
    "jsmin",
    "wget",
    "langdetect",
    "pyinotify",
    "crcmod",
    "uwsgi",
)
ADDED = ("tabulate", "colorama", "wcwidth", "docopt", "toolz", "iniconfig", "pluggy")
GOAL = 3.0

_RUN = (
    "RUN --mount=type=bind,source=ca.crt,target=/etc/pip-ca.crt{cache} "
    "PIP_CERT=/etc/pip-ca.crt pip install --break-system-packages --no-input --progress-bar off -r /requirements.txt"
)


def dockerfile(with_cache: bool, index_url: str) -> str:
    cache = " --mount=type=cache,target=/root/.cache/pip" if with_cache else ""
    lines = [f"FROM {BASE_TAG}"]
    if index_url:
        lines.append(f"ARG PIP_INDEX_URL={index_url}/simple")
        if index_url.startswith("http://"):
            lines.append(f"ARG PIP_TRUSTED_HOST={index_url.removeprefix('http://').split('/')[0].split(':')[0]}")
    lines += ["COPY requirements.txt /requirements.txt", _RUN.format(cache=cache)]
    return "\n".join(lines) + "\n"


def make_debian_tar(path: Path) -> None:
    if path.exists():
        return
    if shutil.which("debootstrap") is None:
        sys.exit(f"{path} is missing and debootstrap is not installed (apt-get install debootstrap)")
    tree = path.with_suffix(".tree")
    shutil.rmtree(tree, ignore_errors=True)
    print(f"making {path} with debootstrap (once, a few minutes)", file=sys.stderr)
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-pip,python3-dev,build-essential",
            "bookworm",
            str(tree),
            "http://deb.debian.org/debian",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(tree), "--numeric-owner", "-cf", str(partial), "."], check=True)
    partial.rename(path)
    shutil.rmtree(tree, ignore_errors=True)


def pybuild(root: Path, *args: str, log: Path | None = None) -> float:
    """Run pybuild from this checkout; the seconds it took. Its output goes to `log`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args]
    with open(log or os.devnull, "w") as output:
        started = time.perf_counter()
        result = subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)
        elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"pybuild {' '.join(args)} failed; see {log}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bench", type=Path, default=Path(os.environ.get("BENCH", "/var/tmp/pybuild-mounts-bench")))
    parser.add_argument(
        "--debian-tar", type=Path, default=Path("/var/tmp/pybuild-bench-debian/bookworm-minbase-python-build.tar")
    )
    parser.add_argument(
        "--index",
        choices=("direct", "mirror", "both"),
        default="both",
        help="direct: PyPI as this network serves it; mirror: through bench/pypi_mirror.py, which restores PyPI's "
        "caching headers (a TLS-intercepting proxy may strip them)",
    )
    parser.add_argument("--index-url", default="", help="for direct: PIP_INDEX_URL for the steps (default: PyPI)")
    parser.add_argument(
        "--ca", type=Path, default=Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    )
    args = parser.parse_args()
    if args.runs > len(ADDED):
        sys.exit(f"at most {len(ADDED)} runs: each adds a requirement of its own")
    make_debian_tar(args.debian_tar)
    shutil.rmtree(args.bench, ignore_errors=True)
    modes = ("direct", "mirror") if args.index == "both" else (args.index,)
    verdicts = []
    for mode in modes:
        if mode == "mirror":
            with PypiMirror(_outward_address(), args.ca) as mirror:
                times = measure(args, args.bench / mode, mirror.url)
        else:
            times = measure(args, args.bench / mode, args.index_url)
        verdicts.append(report(mode, times, args.runs, args.bench / mode / "root"))
    return 0 if all(verdicts) else 1


def measure(args: argparse.Namespace, bench: Path, index_url: str) -> dict[str, list[float]]:
    """Seconds of each rebuild after an added requirement, by variant, in a fresh store under `bench`."""
    root, logs = bench / "root", bench / "logs"
    logs.mkdir(parents=True)
    pybuild(root, "import", str(args.debian_tar), BASE_TAG, log=logs / "import.log")
    contexts = {}
    for variant in ("with cache mount", "without"):
        context = bench / variant.replace(" ", "-")
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile(variant != "without", index_url))
        shutil.copy(args.ca, context / "ca.crt")
        (context / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
        contexts[variant] = context
        print(f"{bench.name}, {variant}: first build, {len(REQUIREMENTS)} requirements (untimed)", file=sys.stderr)
        pybuild(root, "build", "--progress=plain", str(context), log=logs / f"{context.name}-first.log")
    times: dict[str, list[float]] = {variant: [] for variant in contexts}
    for run in range(args.runs):
        added = [*REQUIREMENTS, *ADDED[: run + 1]]
        order = list(contexts) if run % 2 == 0 else list(reversed(contexts))
        for variant in order:
            context = contexts[variant]
            (context / "requirements.txt").write_text("\n".join(added) + "\n")
            log = logs / f"{context.name}-run{run + 1}.log"
            seconds = pybuild(root, "build", "--progress=plain", str(context), log=log)
            times[variant].append(seconds)
            print(f"{bench.name}, run {run + 1}, {variant}, +{ADDED[run]}: {seconds:.2f} s", file=sys.stderr)
    return times


def report(mode: str, times: dict[str, list[float]], runs: int, root: Path) -> bool:
    with_cache = statistics.median(times["with cache mount"])
    without = statistics.median(times["without"])
    ratio = without / with_cache
    print(f"\n{mode}: rebuild after one added requirement (seconds; median of {runs})\n")
    print("| Dockerfile | runs | median |")
    print("|---|---|---|")
    for variant, values in times.items():
        print(f"| {variant} | {', '.join(f'{value:.2f}' for value in values)} | {statistics.median(values):.2f} |")
    verdict = "PASS" if ratio >= GOAL else "FAIL"
    print(f"\n{verdict}: the cache mount makes the rebuild {ratio:.1f}x faster (goal: at least {GOAL:.0f}x)")
    print(f"cache du: {_cache_du(root)}")
    return ratio >= GOAL


def _outward_address() -> str:
    """This host's address on its outward interface: what a step reaches through its user-mode network (the
    host's loopback is out of a step's reach)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        address: str = probe.getsockname()[0]
    return address


def _cache_du(root: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "cache", "du"]
    listing = subprocess.run(command, env=env, capture_output=True, text=True, check=False).stdout
    return "; ".join(" ".join(line.split()[2:4]) for line in listing.splitlines() if "cache mount" in line)


if __name__ == "__main__":
    sys.exit(main())
