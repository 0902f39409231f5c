"""Runs the real docker client for the tests; a `docker build` that failed because Docker itself could not start a
step (a fault of the reference, seen on this kernel about once in ten builds, with or without pybuild running) is run
again, a few times at most. See tests/docker_shim/docker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

_FAULTS = (
    "runc create failed",
    "runc run failed",
    "failed to create shim task",
    "layer does not exist",
    "Error after fallback to chroot",
)
_ATTEMPTS = 4


def _real_docker() -> str:
    shim = os.path.dirname(os.path.abspath(sys.argv[0]))
    path = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if os.path.abspath(entry) != os.path.join(shim, "docker_shim")
    )
    found = shutil.which("docker", path=path)
    if found is None:
        sys.exit("docker: the real client is not on PATH")
    return found


def main() -> int:
    real = _real_docker()
    args = sys.argv[1:]
    if not args or args[0] != "build" or "-" in args[1:]:
        os.execv(real, [real, *args])
    for attempt in range(_ATTEMPTS):
        result = subprocess.run([real, *args], capture_output=True, check=False)
        if result.returncode == 0 or not any(fault.encode() in result.stderr for fault in _FAULTS):
            break
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
