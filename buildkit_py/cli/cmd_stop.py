"""pybuild stop: the stop signal, then SIGKILL after a grace period."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_store
from .container_common import for_each


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("stop", help="stop running containers", description="Stop running containers.")
    parser.add_argument("-t", "--time", type=int, default=None, help="seconds to wait before killing it")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `stop` runs, not for `--help`
    from ..container.lifecycle import stop_container

    store = open_store(args)

    def stop(name: str) -> None:
        stop_container(store, name, args.time)
        print(name)

    return for_each(args.containers, stop)
