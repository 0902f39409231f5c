"""pybuild commit: a container's changes become a new image."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import add_docker_bool, error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "commit",
        help="create an image from a container's changes",
        description="Create a new image from a container's changes.",
    )
    parser.add_argument("-a", "--author", default="", help='author (e.g. "Jane <jane@example.com>")')
    parser.add_argument("-m", "--message", default="", help="commit message")
    parser.add_argument("-c", "--change", action="append", default=[], help="apply a Dockerfile instruction")
    add_docker_bool(parser, "-p", "--pause", default=True, help="pause the container while committing")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `commit` runs, not for `--help`
    from ..container.commit import commit_container
    from ..container.lifecycle import find

    try:
        store = open_store(args)
        row = find(store, args.container)
        image_id = commit_container(store, row, args.repository, args.author, args.message, args.change, args.pause)
    except BuildError as failure:
        error(failure)
        return 1
    print(image_id)
    return 0
