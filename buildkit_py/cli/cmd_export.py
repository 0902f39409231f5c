"""pybuild export: a container's filesystem as a tar archive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a container's filesystem as a tar archive",
        description="Export a container's filesystem (without its volumes) as a tar.",
    )
    parser.add_argument("-o", "--output", type=Path, default=None, help="write to a file instead of stdout")
    parser.add_argument("container", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `export` runs, not for `--help`
    from ..container.lifecycle import find
    from ..container.rootfs import container_root
    from ..layer.generate import write_layer_tar

    if args.output is None and sys.stdout.isatty():
        error("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        return 1
    try:
        store = open_store(args)
        row = find(store, args.container)
        with container_root(store, row, live=False) as root:
            if args.output is not None:
                with open(args.output, "wb") as out:
                    write_layer_tar(root, out)
            else:
                write_layer_tar(root, sys.stdout.buffer)
                sys.stdout.buffer.flush()
    except (BuildError, OSError) as failure:
        error(failure)
        return 1
    return 0
