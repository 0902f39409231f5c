"""pybuild rmi: untag and remove images."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import StoreError
from .common import open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rmi", help="remove images", description="Remove one or more images.")
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("-f", "--force", action="store_true", help="remove an image even when several tags name it")
    parser.description = (
        "Remove one or more images. An image other images were built on is kept, as Docker keeps it: its last tag "
        "is only untagged, and removing it by id is refused, forced or not."
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: image.remove (45 modules) loads when the command runs, not for `--help`
    from ..image.remove import remove_image

    store = open_store(args)
    status = 0
    for name in args.names:
        try:
            for line in remove_image(store, name, force=args.force):
                print(line)
        except StoreError as error:
            print(f"Error: {error}", file=sys.stderr)
            status = 1
    return status
