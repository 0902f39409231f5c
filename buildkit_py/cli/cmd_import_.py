"""pybuild import: a root filesystem tarball becomes a one-layer image (`docker import`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import BuildError
from .common import open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import a root filesystem tarball as an image",
        description="Create an image of one layer from a tarball (plain or compressed), or - for standard input.",
    )
    parser.add_argument("source", metavar="ROOTFS.tar", help="the tarball, or - to read standard input")
    parser.add_argument("name", nargs="?", metavar="NAME[:TAG]", help="tag the image with this name")
    parser.add_argument(
        "-c", "--change", action="append", default=[], help="apply a Dockerfile instruction to the image (repeatable)"
    )
    parser.add_argument("-m", "--message", default="", help="commit message for the image's history")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the frontend and the importer load when the command runs, not for `--help`
    from ..frontend.changes import apply_changes
    from ..image.config import ContainerConfig
    from ..image.importer import import_rootfs

    config = apply_changes(ContainerConfig(), args.change)  # refused changes fail before anything is read
    store = open_store(args)
    if args.source == "-":
        if sys.stdin.isatty():
            raise BuildError("requested import from stdin, but stdin is a terminal")
        image_id = import_rootfs(store, sys.stdin.buffer, args.name, config=config, message=args.message)
    else:
        path = Path(args.source)
        if not path.is_file():
            raise BuildError(f"open {args.source}: no such file")
        image_id = import_rootfs(store, path, args.name, config=config, message=args.message)
    print(image_id)
    return 0
