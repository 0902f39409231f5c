"""pybuild push: send an image from the store to a registry."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_transport_options, open_store, transport_options


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "push", help="push an image to a registry", description="Push an image (NAME[:TAG]) to its registry."
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--compression", choices=("gzip", "zstd", "uncompressed"), default="gzip", help="layer compression (zstd: OCI)"
    )
    parser.add_argument("--oci", action="store_true", help="push an OCI manifest instead of Docker v2 schema 2")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the manifest digest")
    add_transport_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the registry client (httpx) loads when the command runs, not for `--help`
    from ..registry.push import push_image
    from .transfers import TransferView

    store = open_store(args)

    with TransferView(quiet=args.quiet) as view:
        result = push_image(
            store,
            args.name,
            compression=args.compression,
            oci=args.oci,
            options=transport_options(args),
            progress=view.line,
            transfer=view,
        )
    print(result.manifest_digest)
    return 0
