"""pybuild top: the processes running in a container (the host's `ps -ef`, filtered to its pid namespace)."""

from __future__ import annotations

import argparse
import os
import subprocess
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "top", help="show a container's processes", description="Display the running processes of a container."
    )
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("ps_options", nargs=argparse.REMAINDER, help="ps options (default: -ef)")
    parser.set_defaults(func=run)


def _pids_in_namespace(pid: int) -> set[int]:
    try:
        namespace = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return set()
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == namespace:
                    found.add(int(name))
            except OSError:
                continue
    return found


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `top` runs, not for `--help`
    from ..container.lifecycle import RUNNING_STATES, find

    try:
        store = open_store(args)
        row = find(store, args.container)
    except BuildError as failure:
        error(failure)
        return 1
    if row.state not in RUNNING_STATES or row.pid <= 0:
        error(f"Container {row.container_id} is not running")
        return 1
    pids = _pids_in_namespace(row.pid)
    options = args.ps_options or ["-ef"]
    output = subprocess.run(["ps", *options], capture_output=True, text=True, check=False)
    if output.returncode != 0:
        error(f"ps: {output.stderr.strip()}")
        return 1
    lines = output.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        error("ps output has no PID column")
        return 1
    column = header.index("PID")
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0
