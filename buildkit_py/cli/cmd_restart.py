"""pybuild restart: stop (if running), then start again; the read-write layer is kept."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_store
from .container_common import for_each


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("restart", help="restart containers", description="Restart containers.")
    parser.add_argument("-t", "--time", type=int, default=None, help="seconds to wait before killing it")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..container.lifecycle import find, start_container, stop_container

    store = open_store(args)

    def restart(name: str) -> None:
        stop_container(store, name, args.time)
        session = start_container(store, find(store, name), {})
        session.close()
        print(name)

    return for_each(args.containers, restart)
