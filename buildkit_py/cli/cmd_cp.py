"""pybuild cp: copy files between a container and the host (CONTAINER:PATH on one side)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cp",
        help="copy files to or from a container",
        description="Copy files between "
        "a container and the local filesystem: cp CONTAINER:SRC DEST, cp SRC CONTAINER:DEST.",
    )
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("destination", metavar="DEST")
    parser.set_defaults(func=run)


def _split(text: str) -> tuple[str, str] | None:
    if text.startswith(("/", ".")) or ":" not in text:
        return None
    container, _, path = text.partition(":")
    return container, path


def run(args: argparse.Namespace) -> int:
    from ..container.copy import copy_from_container, copy_into_container
    from ..container.lifecycle import find
    from ..container.rootfs import container_root

    source, destination = _split(args.source), _split(args.destination)
    if (source is None) == (destination is None):
        error("copying between containers is not supported" if source else "must specify at least one container source")
        return 1
    try:
        store = open_store(args)
        if source is not None:
            row = find(store, source[0])
            with container_root(store, row) as root:
                copy_from_container(root, source[1] or "/", Path(args.destination))
        elif destination is not None:
            row = find(store, destination[0])
            with container_root(store, row, writable=True) as root:
                copy_into_container(root, Path(args.source), destination[1] or "/")
    except (BuildError, OSError) as failure:
        error(failure)
        return 1
    return 0
