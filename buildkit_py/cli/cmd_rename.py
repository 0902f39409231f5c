"""pybuild rename: give a container a new name."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_store
from .container_common import for_each


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rename", help="rename a container", description="Rename a container.")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("new_name", metavar="NEW_NAME")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `rename` runs, not for `--help`
    from ..container.lifecycle import rename_container

    store = open_store(args)
    return for_each([args.container], lambda name: rename_container(store, name, args.new_name))
