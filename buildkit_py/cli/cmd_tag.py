"""pybuild tag: give an image another name."""

from __future__ import annotations

import argparse
from typing import Any

from ..reference import parse_reference
from .common import open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tag", help="name an image", description="Create a tag TARGET that refers to SOURCE."
    )
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument("target", metavar="TARGET")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args)
    image_id = store.resolve(args.source)
    store.tags.set(parse_reference(args.target).familiar, image_id)
    return 0
