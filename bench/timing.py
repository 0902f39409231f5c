"""Run one command, wall-clock it with perf_counter and read its own peak RSS from wait4."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Timing:
    seconds: float
    returncode: int
    # ru_maxrss of this child (the largest process in its tree that it waited for), in KiB on Linux.
    peak_rss_kib: int
    timed_out: bool = False
    # ru_utime + ru_stime of this child and the descendants it waited for (for docker: the client only).
    cpu_seconds: float = 0.0


def run_timed(
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800.0,
) -> Timing:
    """Run `argv` with stdout and stderr to `log`; wait4 gives this child's rusage, not the harness's other children."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        start = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        expired = threading.Event()

        def kill_group() -> None:
            expired.set()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill_group)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Timing(seconds, process.returncode, usage.ru_maxrss, expired.is_set(), cpu)


def run_quiet(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 1800.0,
) -> subprocess.CompletedProcess[str]:
    """Untimed set-up and clean-up commands; a failure shows the command and its output."""
    result = subprocess.run(
        list(argv),
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise SetupError(
            f"{' '.join(argv)}: exit status {result.returncode}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result


class SetupError(Exception):
    """An untimed preparation step failed: the engine or scenario is skipped with this message."""
