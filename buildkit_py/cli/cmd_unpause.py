"""pybuild unpause: thaw paused containers."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_store
from .container_common import for_each


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "unpause", help="unpause containers", description="Unpause all processes within one or more containers."
    )
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `unpause` runs, not for `--help`
    from ..container.pausing import pause_container

    store = open_store(args)

    def act(name: str) -> None:
        pause_container(store, name, False)
        print(name)

    return for_each(args.containers, act)
