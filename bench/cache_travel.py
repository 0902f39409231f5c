"""Caches that travel (issue 12): runner B's build with runner A's imported cache, beside B's cold build and a local
no-op rebuild; the exported cache's size for mode=min and mode=max beside the image's own; and the export of an
unchanged cache to a registry that has it already.

    python3 bench/cache_travel.py [--scenarios many-steps,debian-app] [--runs 3] [--bench DIR]

Each runner is a fresh `--root`. Both get the same base images the way a CI runner gets them, untimed: built or
imported once, saved, and loaded into each root (so the image ids, and with them the cache keys, are the same). A
docker-registry on 127.0.0.1 holds the cache (`--cache-to type=registry,mode=max`). Medians of `--runs` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scenarios import (
    BUSYBOX_TAG,
    DEBIAN_TAG,
    DEBIAN_TAR,
    MAKE_SCENARIOS,
    SCENARIOS,
    ensure_debian_tar,
    ensure_generated,
)
from timing import run_quiet, run_timed

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "tests"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="many-steps,debian-app")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bench", type=Path, default=Path(os.environ.get("BENCH", "/var/tmp/pybuild-bench")))
    parser.add_argument("--debian-tar", type=Path, default=DEBIAN_TAR)
    return parser.parse_args()


def pybuild(root: Path) -> list[str]:
    return [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root)]


ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@contextmanager
def registry() -> Iterator[str]:
    from registry_fixtures import run_registry

    with tempfile.TemporaryDirectory(prefix="cache-bench-registry-") as work, run_registry(Path(work), None) as server:
        yield server.host


def make_bases(bench: Path, work: Path, debian_tar: Path | None) -> Path:
    """The base images, built and imported once, saved as one archive every runner loads."""
    root = work / "bases"
    run_quiet([*pybuild(root), "build", "-q", "-t", BUSYBOX_TAG, str(bench / "base-busybox")], env=ENV, cwd=REPO)
    tags = [BUSYBOX_TAG]
    if debian_tar is not None:
        run_quiet([*pybuild(root), "import", str(debian_tar), DEBIAN_TAG], env=ENV, cwd=REPO)
        tags.append(DEBIAN_TAG)
    archive = work / "bases.tar"
    run_quiet([*pybuild(root), "save", "-o", str(archive), *tags], env=ENV, cwd=REPO)
    return archive


def fresh_runner(root: Path, bases: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    run_quiet([*pybuild(root), "load", "-i", str(bases)], env=ENV, cwd=REPO)


def timed(argv: list[str], log: Path) -> float:
    timing = run_timed(argv, log, env=ENV, cwd=REPO)
    if timing.returncode != 0:
        raise SystemExit(f"failed ({timing.returncode}): see {log}")
    return timing.seconds


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure(name: str, args: argparse.Namespace, bases: Path, host: str, work: Path) -> dict[str, object]:
    scenario = SCENARIOS[name]
    context = scenario.context(args.bench)
    logs = work / "logs" / name
    figures: dict[str, list[float]] = {
        key: [] for key in ("a_cold_export", "b_cold", "b_imported", "a_noop", "export_unchanged")
    }
    sizes: dict[str, int] = {}
    for run in range(args.runs):
        cache_ref = f"{host}/cache/{name}:run{run}"
        a, b = work / "runner-a", work / "runner-b"
        fresh_runner(a, bases)
        metadata = work / "metadata.json"
        figures["a_cold_export"].append(
            timed(
                [*pybuild(a), "build", "--progress=plain", "--network=none", "-t", scenario.tag(),
                 "--metadata-file", str(metadata), "--cache-to", f"type=registry,ref={cache_ref},mode=max",
                 str(context)],
                logs / f"a-cold-{run}.log",
            )
        )  # fmt: skip
        figures["a_noop"].append(
            timed(
                [*pybuild(a), "build", "--progress=plain", "--network=none", str(context)], logs / f"a-noop-{run}.log"
            )
        )
        noop_export_log = logs / f"a-noop-export-{run}.log"
        timed(
            [*pybuild(a), "build", "--progress=plain", "--network=none", "--cache-to",
             f"type=registry,ref={cache_ref},mode=max", str(context)],
            noop_export_log,
        )  # fmt: skip
        unchanged = re.search(r"exporting cache to .*: unchanged .*, ([\d.]+)s", noop_export_log.read_text())
        figures["export_unchanged"].append(float(unchanged.group(1)) if unchanged else float("nan"))
        if run == 0:
            layers = json.loads(metadata.read_text())["pybuild.layers"]
            sizes["image"] = sum(int(layer["size"]) for layer in layers)
            for mode in ("min", "max"):
                folder = work / f"cache-{mode}"
                shutil.rmtree(folder, ignore_errors=True)
                run_quiet(
                    [*pybuild(a), "build", "-q", "--cache-to", f"type=local,dest={folder},mode={mode}", str(context)],
                    env=ENV,
                    cwd=REPO,
                )
                sizes[f"cache_{mode}"] = folder_size(folder)
        fresh_runner(b, bases)
        figures["b_cold"].append(
            timed(
                [*pybuild(b), "build", "--progress=plain", "--network=none", str(context)], logs / f"b-cold-{run}.log"
            )
        )
        fresh_runner(b, bases)
        imported_log = logs / f"b-imported-{run}.log"
        figures["b_imported"].append(
            timed(
                [*pybuild(b), "build", "--progress=plain", "--network=none", "--cache-from", cache_ref, str(context)],
                imported_log,
            )
        )
        ran = re.findall(r"^#\d+ cache miss", imported_log.read_text(), flags=re.MULTILINE)
        if ran:
            print(
                f"{name}: runner B ran {len(ran)} steps with the imported cache (see {imported_log})", file=sys.stderr
            )
    medians = {key: statistics.median(values) for key, values in figures.items()}
    return {"scenario": name, **medians, **sizes}


def report(rows: list[dict[str, object]]) -> str:
    lines = [
        (
            "| scenario | B imported (s) | B cold (s) | A no-op (s) | B imported ÷ B cold | unchanged export (s) "
            "| image (gzip) | cache mode=min | cache mode=max |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = float(row["b_imported"]) / float(row["b_cold"])  # type: ignore[arg-type]
        lines.append(
            f"| {row['scenario']} | {row['b_imported']:.2f} | {row['b_cold']:.2f} | {row['a_noop']:.2f} | {ratio:.2f} "
            f"| {row['export_unchanged']:.3f} | {int(row['image']) / 1e6:.2f} MB | {int(row['cache_min']) / 1e6:.2f} MB "  # type: ignore[call-overload]
            f"| {int(row['cache_max']) / 1e6:.2f} MB |"  # type: ignore[call-overload]
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    ensure_generated(MAKE_SCENARIOS, args.bench, names, regenerate=False)
    debian = ensure_debian_tar(args.debian_tar) if "debian-app" in names else None
    work = args.bench / "cache-travel"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    bases = make_bases(args.bench, work, debian)
    rows = []
    with registry() as host:
        for name in names:
            rows.append(measure(name, args, bases, host, work))
            print(json.dumps(rows[-1]), file=sys.stderr)
    table = report(rows)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
