"""pybuild rm: remove containers (and their read-write layers)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_store
from .container_common import for_each


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rm", help="remove containers", description="Remove one or more containers.")
    parser.add_argument("-f", "--force", action="store_true", help="kill and remove a running container")
    parser.add_argument("-v", "--volumes", action="store_true", help="also remove its anonymous volumes")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `rm` runs, not for `--help`
    from ..container.lifecycle import remove_container

    store = open_store(args)

    def remove(name: str) -> None:
        remove_container(store, name, force=args.force, volumes=args.volumes)
        print(name)

    return for_each(args.containers, remove)
