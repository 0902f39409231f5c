"""pybuild pull: fetch an image from a registry into the store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import add_transport_options, open_store, transport_options


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pull", help="pull an image from a registry", description="Pull an image (NAME[:TAG] or NAME@DIGEST)."
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--platform", default=None, help="os/arch[/variant] to pick from an index (default linux/amd64)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    add_transport_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the registry client (httpx; registry.pull, 200 modules) loads when the command runs, not for `--help`
    from ..image.manifest import Platform
    from ..registry.pull import pull_image
    from .transfers import TransferView

    store = open_store(args)
    platform = Platform.parse(args.platform) if args.platform else None

    with TransferView(quiet=args.quiet) as view:
        result = pull_image(
            store,
            args.name,
            platform=platform,
            options=transport_options(args),
            progress=view.line,
            transfer=view,
        )
    if not args.quiet:
        print(f"Status: Downloaded image for {result.reference.familiar}", file=sys.stderr)
    print(result.image_id)
    return 0
