"""pybuild create: create a container from an image without starting it."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import EXIT_OWN_ERROR, add_create_options, error, run_options


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "create",
        help="create a container",
        description="Create a new container (start it with `start`).",
        add_help=False,
    )
    add_create_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `create` runs, not for `--help`
    from ..container.lifecycle import create_container

    try:
        store = open_store(args)
        row = create_container(store, args.image, run_options(args, attach_stdin=args.interactive), args.name)
    except BuildError as failure:
        error(failure)
        return EXIT_OWN_ERROR
    print(row.container_id)
    return 0
