"""pybuild kill: send a signal (SIGKILL by default) to running containers."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_store
from .container_common import for_each


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("kill", help="kill running containers", description="Kill running containers.")
    parser.add_argument("-s", "--signal", default="KILL", help="the signal to send (name or number)")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `kill` runs, not for `--help`
    from ..container.lifecycle import signal_container
    from ..container.signals import parse_signal

    store = open_store(args)
    parse_signal(args.signal)  # a bad name fails once, before any container is touched

    def kill(name: str) -> None:
        signal_container(store, name, args.signal)
        print(name)

    return for_each(args.containers, kill)
