"""pybuild pause: freeze every process of running containers (cgroup freezer)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_store
from .container_common import for_each


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pause", help="pause containers", description="Pause all processes within one or more containers."
    )
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `pause` runs, not for `--help`
    from ..container.pausing import pause_container

    store = open_store(args)

    def act(name: str) -> None:
        pause_container(store, name, True)
        print(name)

    return for_each(args.containers, act)
