"""pybuild image prune: remove unused images, as `docker image prune`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .common import help_without_command, open_store
from .formatting import human_size

if TYPE_CHECKING:
    from ..image.remove import ImagePruneReport


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("image", help="manage images (image prune)")
    commands = parser.add_subparsers(dest="image_command", metavar="COMMAND")
    prune = commands.add_parser(
        "prune",
        help="remove unused images",
        description="Remove dangling images: untagged, and no other image built on them. With --all, every image. "
        "Layers a build cache record still names stay until `pybuild cache prune` (or `system prune`).",
    )
    add_prune_flags(prune)
    prune.set_defaults(func=run_prune)
    help_without_command(parser)


def add_prune_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="remove all images, not only dangling ones")
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")


def confirmed(args: argparse.Namespace, warning: str) -> bool:
    """Docker's confirmation prompt, skipped with --force; anything but y or yes is a no."""
    if args.force:
        return True
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def print_image_report(report: ImagePruneReport) -> None:
    if report.lines:
        print("Deleted Images:")
        for line in report.lines:
            print(line)
        print()


def run_prune(args: argparse.Namespace) -> int:
    # lazy: image.remove (45 modules) loads when `image prune` runs, not for `--help`
    from ..image.remove import prune_images

    what = "all images without at least one container associated to them" if args.all else "all dangling images"
    if not confirmed(args, f"WARNING! This will remove {what}."):
        return 0
    report = prune_images(open_store(args), all=args.all)
    print_image_report(report)
    print(f"Total reclaimed space: {human_size(report.bytes_freed)}")
    return 0
