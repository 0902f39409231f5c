"""Cache mounts that travel (issue 12, item 2): what `--cache-to type=local,...,cache-mounts=true` costs on runner A,
and what restoring the cache mount costs runner B, for a cache mount of `--size` MB of incompressible files (as a
pip or npm cache of downloaded archives is).

    python3 bench/cache_mount_travel.py [--size 100] [--files 1000] [--runs 3] [--compression gzip|zstd]

Runner A builds a busybox image whose RUN fills `--mount=type=cache,target=/cache` once and adds a small file on
each run that changes its key. Timed, from the build's own progress lines: A's first export (pack and compress the
folder), A's export of an unchanged cache mount (read and hashed, its compressed form reused), A's export after a
step added a file, the same export without cache-mounts=true, and runner B's restore of the folder from the cache.
Medians of `--runs` runs, each on fresh roots.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from buildkit_py.builder import build
from buildkit_py.solver.progress import BuildMessage, ProgressEvent
from buildkit_py.store import Store

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ARG STAMP
RUN --mount=type=cache,target=/cache,id=bench \\
    if [ ! -e /cache/filled ]; then \\
      i=0; while [ $i -lt {files} ]; do \\
        dd if=/dev/urandom of=/cache/archive-$i bs={file_kb}k count=1 2>/dev/null; i=$((i+1)); done; \\
      touch /cache/filled; fi; \\
    echo "$STAMP" > /cache/stamp-$STAMP; ls /cache | wc -l > /count
"""


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, BuildMessage):
            self.lines.append(event.text)

    def seconds(self, pattern: str) -> float:
        for line in self.lines:
            if re.search(pattern, line):
                found = re.search(r"([\d.]+)s$", line)
                if found:
                    return float(found.group(1))
        raise RuntimeError(f"no line matches {pattern!r}:\n" + "\n".join(self.lines))


def one_run(work: Path, files: int, file_kb: int, compression: str) -> dict[str, float]:
    context = work / "context"
    context.mkdir(parents=True)
    shutil.copy2("/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(DOCKERFILE.format(files=files, file_kb=file_kb))
    a, b = Store(work / "runner-a"), Store(work / "runner-b")
    cache, plain = work / "cache", work / "cache-without-mounts"
    to = f"type=local,dest={cache},cache-mounts=true,compression={compression}"
    timings: dict[str, float] = {}
    for label, stamp, specs in (
        ("first export", "1", [to]),
        ("unchanged export", "1", [to]),
        ("export after a change", "2", [to]),
        ("export without cache-mounts", "3", [f"type=local,dest={plain},compression={compression}"]),
    ):
        lines = Lines()
        result = build(context, store=a, build_args={"STAMP": stamp}, cache_to=specs, progress=lines)
        assert result.cache_exports[0].error == "", result.cache_exports[0].error
        timings[label] = lines.seconds(r"^exporting cache to .*: (unchanged|\d+ records)")
        if "cache-mounts=true" in specs[0]:
            timings[label] += lines.seconds(r"^packing cache mount bench: ")
    lines = Lines()
    build(context, store=b, build_args={"STAMP": "4"}, cache_from=[f"type=local,src={cache}"], progress=lines)
    timings["B restores it"] = lines.seconds(r"^importing cache mount bench from")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100, help="MB of files in the cache mount")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compression", default="gzip", choices=["gzip", "zstd", "uncompressed"])
    args = parser.parse_args()
    file_kb = max(1, args.size * 1000 // args.files)
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="cache-mount-bench-", dir="/var/tmp") as work:
            runs.append(one_run(Path(work), args.files, file_kb, args.compression))
    size = args.files * file_kb / 1000
    print(f"cache mount of {args.files} files, {size:.0f} MB, {args.compression}; medians of {args.runs} runs")
    print("| | seconds |\n|---|---|")
    for label in runs[0]:
        print(f"| {label} | {statistics.median(run[label] for run in runs):.2f} |")


if __name__ == "__main__":
    main()
