"""pybuild wait: block until containers stop, then print their exit codes."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_store
from .container_common import for_each


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("wait", help="wait for containers to stop", description="Print exit codes.")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `wait` runs, not for `--help`
    from ..container.lifecycle import wait_container

    store = open_store(args)
    return for_each(args.containers, lambda name: print(wait_container(store, name)))
