"""pybuild save: write images to a docker archive (or an OCI layout)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import BuildError
from ..fs.output import check_output_path, open_output
from .common import open_store

if TYPE_CHECKING:
    from ..store import Store
    from ..transfer import TransferCallback


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "save", help="save images to a tar archive", description="Save one or more images to a tar archive."
    )
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("-o", "--output", help="write to this file instead of standard output")
    parser.add_argument("--format", choices=("docker", "oci"), default="docker", help="archive format")
    parser.add_argument(
        "--compression",
        choices=("gzip", "zstd", "uncompressed"),
        default=None,
        help="layer compression of an OCI layout (default gzip; docker archives hold uncompressed layers)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .transfers import TransferView  # lazy: bars only on a terminal

    if args.output and not (args.format == "oci" and (args.output.endswith("/") or Path(args.output).is_dir())):
        check_output_path(args.output, "archive")
    store = open_store(args)
    for name in args.names:
        store.resolve(name)
    with TransferView() as view:
        _save(args, store, view)
    return 0


def _save(args: argparse.Namespace, store: Store, view: TransferCallback) -> None:
    from ..image.docker_archive import save_docker_archive  # lazy: only the format asked for loads its writer

    save: Callable[[Store, Sequence[str], BinaryIO], None]
    if args.format == "oci":
        # lazy: only the format asked for loads its writer
        from ..image.oci_layout import save_oci_archive, save_oci_layout

        compression = args.compression or "gzip"
        if args.output and (args.output.endswith("/") or Path(args.output).is_dir()):
            save_oci_layout(store, args.names, Path(args.output), compression, view)
            return

        def save(store: Store, names: Sequence[str], out: BinaryIO) -> None:
            save_oci_archive(store, names, out, compression, view)

    else:
        if args.compression not in (None, "uncompressed"):
            raise BuildError("docker archives hold uncompressed layers; use --format oci for --compression")

        def save(store: Store, names: Sequence[str], out: BinaryIO) -> None:
            save_docker_archive(store, names, out, view)

    if not args.output:
        if sys.stdout.isatty():
            raise BuildError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        save(store, args.names, sys.stdout.buffer)
        return
    with open_output(args.output, "archive") as stream:
        save(store, args.names, stream)
