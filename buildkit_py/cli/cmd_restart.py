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
    # lazy: the container machinery (70 modules) loads when `restart` runs, not for `--help`
    from ..container.lifecycle import find, start_container, stop_container
    from ..container.spawn import fork_monitor

    monitors = iter(
        [fork_monitor(args.root) for _ in args.containers]
    )  # before the store opens: see container/spawn.py
    store = open_store(args)

    def restart(name: str) -> None:
        monitor = next(monitors)
        try:
            stop_container(store, name, args.time)
            row = find(store, name)
        except BaseException:
            monitor.close()
            raise
        session = start_container(store, row, {}, monitor)
        session.close()
        print(name)

    return for_each(args.containers, restart)
