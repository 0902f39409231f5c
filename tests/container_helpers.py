"""Running `pybuild` container commands as a user would: a real CLI process per command, on a store of our own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from helpers import BASE_IMAGE, base_context

REPO = Path(__file__).resolve().parents[1]


class Pybuild:
    def __init__(self, root: Path) -> None:
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(self.root), *args]

    def run(
        self, *args: str, input: bytes | None = None, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            input=None if input is None else input.decode(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            stdin=subprocess.DEVNULL if input is None else None,
            env=env,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 120) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
        return result.stdout

    def popen(self, *args: str, stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(*args), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)

    def remove_all(self) -> None:
        ids = self.run("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            self.run("rm", "-f", "-v", *ids)


def unique(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(condition: Callable[[], bool], seconds: float = 30.0, step: float = 0.05) -> bool:
    """Poll `condition` until it holds (no timed assertion: the deadline only bounds a hang)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def build_base(root: Path, tmp: Path) -> None:
    from buildkit_py.builder import build
    from buildkit_py.store import Store

    with Store(root) as store:
        build(base_context(tmp), tags=[BASE_IMAGE], store=store)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def mounts_under(path: Path) -> list[str]:
    text = Path("/proc/self/mountinfo").read_text()
    return [line for line in text.splitlines() if str(path) in line]


def lines_of(text: str) -> Iterator[str]:
    return iter(text.splitlines())
