"""pybuild cp: copy files between a container and the host (CONTAINER:PATH on one side), or a tar stream with `-`."""

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
        "cp",
        help="copy files to or from a container",
        description="Copy files between a container and the local filesystem: cp CONTAINER:SRC DEST, "
        "cp SRC CONTAINER:DEST. `-` as DEST writes a tar of SRC to stdout; `-` as SRC extracts a tar from stdin "
        "into the container folder DEST.",
    )
    parser.add_argument("-a", "--archive", action="store_true", help="archive mode (copy all uid/gid information)")
    parser.add_argument("-L", "--follow-link", action="store_true", help="always follow a symlink in SRC")
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("destination", metavar="DEST")
    parser.set_defaults(func=run)


def _split(text: str) -> tuple[str, str] | None:
    if text == "-" or text.startswith(("/", ".")) or ":" not in text:
        return None
    container, _, path = text.partition(":")
    return container, path


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `cp` runs, not for `--help`
    from ..container import copy
    from ..container.lifecycle import find
    from ..container.rootfs import container_root, kernel_mounts

    source, destination = _split(args.source), _split(args.destination)
    if (source is None) == (destination is None):
        error("copying between containers is not supported" if source else "must specify at least one container source")
        return 1
    if args.destination == "-" and source is not None and sys.stdout.isatty():
        error("cowardly refusing to write a tar archive to a terminal")
        return 1
    try:
        store = open_store(args)
        if source is not None:
            name, path = source
            row = find(store, name)
            opaque = kernel_mounts(row)
            with container_root(store, row) as root:
                if args.destination == "-":
                    copy.stream_from_container(root, path or "/", sys.stdout.buffer, args.follow_link, name, opaque)
                    sys.stdout.buffer.flush()
                else:
                    destination_path = Path(args.destination)
                    copy.copy_from_container(
                        root, path or "/", destination_path, args.follow_link, args.archive, name, opaque
                    )
        elif destination is not None:
            name, path = destination
            row = find(store, name)
            with container_root(store, row, writable=True) as root:
                owner = copy.configured_owner(root, row) if args.archive else None
                if args.source == "-":
                    copy.extract_into_container(root, sys.stdin.buffer, path or "/", owner, name)
                else:
                    copy.copy_into_container(root, Path(args.source), path or "/", args.follow_link, owner, name)
    except BrokenPipeError:
        raise  # a reader that stopped early (`| head`): main() says nothing
    except (BuildError, OSError) as failure:
        error(failure)
        return 1
    return 0
