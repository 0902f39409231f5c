"""pybuild system df: disk usage of images and build cache, as `docker system df`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from .cmd_cache import print_prune_report
from .cmd_image import add_prune_flags, confirmed, print_image_report
from .common import help_without_command, open_store
from .formatting import age_of, human_age, human_size, table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("system", help="manage the store as a whole")
    commands = parser.add_subparsers(dest="system_command", metavar="COMMAND")
    df = commands.add_parser(
        "df",
        help="show disk usage",
        description="Disk usage of images and build cache: bytes on disk, each layer counted once with its tar, its "
        "unpacked snapshot and its compressed copies. (`images` shows Docker's image size, the content alone.)",
    )
    df.add_argument("-v", "--verbose", action="store_true", help="every image and cache record")
    df.set_defaults(func=run_df)
    check = commands.add_parser(
        "check",
        help="verify every blob and snapshot",
        description="Verify every blob against its digest and every unpacked layer against its blob, like git fsck; "
        "say which images are damaged. What is found damaged is refused by later builds, saves and pushes.",
    )
    check.set_defaults(func=run_check)
    prune = commands.add_parser(
        "prune",
        help="remove unused images and build cache",
        description="Remove dangling images and dangling build cache (with --all: every image and all build cache), "
        "as `docker system prune`. Removing cache records makes the next build run those steps again.",
    )
    add_prune_flags(prune)
    prune.set_defaults(func=run_prune)
    help_without_command(parser)


def _reclaimable(reclaimable: int, size: int) -> str:
    if size == 0:
        return human_size(reclaimable)
    return f"{human_size(reclaimable)} ({reclaimable * 100 // size}%)"


def run_df(args: argparse.Namespace) -> int:
    # lazy: store.gc (44 modules) loads when `system df` runs, not for `--help`
    from ..store.gc import system_df

    usage = system_df(open_store(args))
    if not args.verbose:
        rows = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]]
        for line in (usage.images, usage.build_cache):
            rows.append(
                [
                    line.kind,
                    str(line.total),
                    str(line.active),
                    human_size(line.size),
                    _reclaimable(line.reclaimable, line.size),
                ]
            )
        print(table(rows))
        return 0
    print("Images space usage:\n")
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE"]]
    for image in usage.image_details:
        names = [tag.rpartition(":") for tag in image.tags] or [("<none>", ":", "<none>")]
        for repository, _, tag in names:
            rows.append(
                [
                    repository,
                    tag,
                    image.image_id.short,
                    human_age(image.created),
                    human_size(image.size),
                    human_size(image.shared_size),
                    human_size(image.unique_size),
                ]
            )
    print(table(rows))
    print(f"\nBuild cache usage: {human_size(usage.build_cache.size)}\n")
    rows = [["CACHE ID", "SIZE", "SHARED SIZE", "CREATED", "LAST USED", "IN USE", "DESCRIPTION"]]
    for record in usage.cache:
        rows.append(
            [
                record.key.hex[:25],
                human_size(record.size),
                human_size(record.shared_size),
                age_of(record.created),
                age_of(record.last_used),
                str(record.in_use_by_image).lower(),
                record.description,
            ]
        )
    for mount in usage.cache_mounts:
        rows.append(
            [
                mount.record.folder[:25],
                human_size(mount.size),
                human_size(0),
                age_of(mount.record.created),
                age_of(mount.record.last_used),
                str(mount.in_use).lower(),
                f"cache mount {mount.record.id}",
            ]
        )
    print(table(rows))
    return 0


def run_check(args: argparse.Namespace) -> int:
    # lazy: loaded when `system check` runs, not for `--help`
    from ..image.check import check_store

    report = check_store(open_store(args))
    for problem in report.problems:
        print(f"damaged {problem}")
    for image in report.damaged_images:
        names = ", ".join(image.tags) or "<untagged>"
        print(f"damaged image {names} ({image.image_id.short})")
    summary = f"checked {report.blobs_checked} blobs and {report.snapshots_checked} snapshots"
    if report.clean:
        print(f"{summary}: no problems")
        return 0
    print(f"{summary}: {len(report.problems)} problems", file=sys.stderr)
    return 1


def run_prune(args: argparse.Namespace) -> int:
    # lazy: image.remove and store.gc load when `system prune` runs, not for `--help`
    from ..image.remove import prune_images
    from ..store.gc import prune_cache

    if args.all:
        items = ["all images without at least one container associated to them", "all build cache"]
    else:
        items = ["all dangling images", "all dangling build cache"]
    warning = "WARNING! This will remove:\n" + "".join(f"  - {item}\n" for item in items)
    if not confirmed(args, warning):
        return 0
    store = open_store(args)
    images = prune_images(store, all=args.all)
    print_image_report(images)
    cache = prune_cache(store, all=args.all)
    print_prune_report(replace(cache, bytes_freed=cache.bytes_freed + images.bytes_freed))
    return 0
