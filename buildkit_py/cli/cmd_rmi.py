"""pybuild rmi: untag and remove images."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .common import open_store

if TYPE_CHECKING:
    from ..store import Store


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


def remove_image(store: Store, name: str, *, force: bool = False) -> list[str]:
    """`docker rmi NAME`'s lines. An image other images were built on is kept (Docker's parent images); deleting
    an image also deletes the untagged images it was built on that nothing else is built on, as Docker prunes them."""
    from ..image.lineage import has_children, parents_of

    image_id, _ = store.lookup(name)
    parents = parents_of(store, image_id)
    lines = store.remove_image(name, force=force, has_children=lambda i: has_children(store, i))
    if f"Deleted: {image_id}" not in lines:
        return lines
    for parent in parents:
        if store.tags.of(parent) or has_children(store, parent):
            break
        lines += store.remove_image(str(parent), has_children=lambda i: has_children(store, i))
    return lines
