"""pybuild load: images from a docker archive or an OCI layout (tar, folder or standard input) into the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import BuildError
from .common import open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="load images from a tar archive or an OCI layout",
        description="Load images from a docker archive or an OCI image layout (tar or folder), or standard input.",
    )
    parser.add_argument("-i", "--input", help="read from this file or OCI layout folder instead of standard input")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    parser.add_argument("--platform", help="the platform to pick from a multi-platform index (default linux/amd64)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: loaded when the command runs, not for `--help`
    from ..image.load import load_archive

    store = open_store(args)
    if args.input:
        source: Any = Path(args.input)
        if not source.exists():
            raise BuildError(f"open {args.input}: no such file or directory")
    else:
        if sys.stdin.isatty():
            raise BuildError("requested load from stdin, but stdin is empty")
        source = sys.stdin.buffer
    loaded = load_archive(store, source, args.platform)
    if not args.quiet:
        for name in loaded:
            if name.startswith("sha256:"):
                print(f"Loaded image ID: {name}")
            else:
                print(f"Loaded image: {name}")
    return 0
