"""pybuild cache du | prune: the build cache's disk usage, and `docker builder prune`."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from ..errors import BuildError
from .common import help_without_command, open_store
from .formatting import age_of, human_size, table

if TYPE_CHECKING:
    from ..store.cachemounts import CacheMountRecord
    from ..store.gc import PruneReport

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_ID_LENGTH = 25


def parse_size(text: str) -> int:
    """Docker's RAMInBytes (--keep-storage): "10GB", "512mb", "1.5g", "2048"; k, m, g... are powers of 1024."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise BuildError(f"invalid size: {text!r} (examples: 512MB, 10GB, 1.5g)")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds: "24h", "90m", "1h30m", "1.5h", "300ms"."""
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise BuildError(f"invalid duration: {text!r} (examples: 24h, 90m, 1h30m)")
    return seconds


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("cache", help="show and prune the build cache")
    commands = parser.add_subparsers(dest="cache_command", metavar="COMMAND")
    du = commands.add_parser("du", help="disk usage of the build cache", description="Disk usage of the build cache.")
    du.add_argument("-v", "--verbose", action="store_true", help="every record in detail")
    du.set_defaults(func=run_du)
    prune = commands.add_parser(
        "prune",
        help="remove build cache",
        description="Remove build cache records, the layers only they kept, and cache mounts no running step holds. "
        "A cache record is what makes a step a hit: once it is removed the step runs again on the next build, even "
        "when an image still holds its layers (those are never removed, so removing their records frees nothing). "
        "Without --all, only records no tagged image was built through.",
    )
    prune.add_argument("-a", "--all", action="store_true", help="remove all records, not only dangling ones")
    prune.add_argument("--keep-storage", metavar="SIZE", help="keep the most recently used cache up to SIZE (10GB)")
    prune.add_argument(
        "--filter", action="append", default=[], metavar="until=DURATION", help="only records last used before"
    )
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.set_defaults(func=run_prune)
    help_without_command(parser)


def _mount_description(record: CacheMountRecord) -> str:
    copy = f" (private copy {record.instance})" if record.instance else ""
    return f"cache mount {record.id}{copy}"


def run_du(args: argparse.Namespace) -> int:
    # lazy: store.gc (44 modules) loads when the command runs, not for `--help`
    from ..store.gc import cache_mount_usage, cache_totals, cache_usage

    store = open_store(args)
    usages = cache_usage(store)
    mounts = cache_mount_usage(store)
    if args.verbose:
        for usage in usages:
            print(f"ID:\t\t{usage.key.hex[:_ID_LENGTH]}")
            print(f"Created at:\t{age_of(usage.created)}")
            print(f"Reclaimable:\t{str(not usage.in_use_by_image).lower()}")
            print(f"Shared:\t\t{str(usage.shared_size > 0).lower()}")
            print(f"Size:\t\t{human_size(usage.size)}")
            print(f"Shared size:\t{human_size(usage.shared_size)}")
            print(f"Description:\t{usage.description}")
            print(f"Last used:\t{age_of(usage.last_used)}")
            print()
        for mount in mounts:
            print(f"ID:\t\t{mount.record.folder[:_ID_LENGTH]}")
            print("Type:\t\texec.cachemount")
            print(f"Created at:\t{age_of(mount.record.created)}")
            print(f"Reclaimable:\t{str(not mount.in_use).lower()}")
            print(f"Size:\t\t{human_size(mount.size)}")
            print(f"Description:\t{_mount_description(mount.record)}")
            print(f"Last used:\t{age_of(mount.record.last_used)}")
            print()
    else:
        rows = [["ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED", "DESCRIPTION"]]
        for usage in usages:
            rows.append(
                [
                    usage.key.hex[:_ID_LENGTH],
                    str(not usage.in_use_by_image).lower(),
                    human_size(usage.size),
                    age_of(usage.last_used),
                    usage.description,
                ]
            )
        for mount in mounts:
            rows.append(
                [
                    mount.record.folder[:_ID_LENGTH],
                    str(not mount.in_use).lower(),
                    human_size(mount.size),
                    age_of(mount.record.last_used),
                    _mount_description(mount.record),
                ]
            )
        print(table(rows))
    totals = cache_totals(store)
    print(f"Shared:\t\t{human_size(totals.shared)}")
    print(f"Private:\t{human_size(totals.private)}")
    print(f"Reclaimable:\t{human_size(totals.reclaimable)}")
    print(f"Total:\t\t{human_size(totals.total)}")
    return 0


def _until(filters: list[str]) -> float | None:
    until: float | None = None
    for text in filters:
        name, equals, value = text.partition("=")
        if not equals or name.strip().lower() != "until":
            raise BuildError(f"invalid filter {text!r}: only until=DURATION is supported (until=24h)")
        until = parse_duration(value.strip())
    return until


def run_prune(args: argparse.Namespace) -> int:
    from ..store.gc import prune_cache  # lazy: see run_du

    until = _until(args.filter)
    keep_storage = parse_size(args.keep_storage) if args.keep_storage is not None else None
    if not args.force:
        what = "all build cache" if args.all else "all dangling build cache"
        sys.stdout.write(f"WARNING! This will remove {what}. Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    report = prune_cache(open_store(args), all=args.all, keep_storage=keep_storage, until_seconds=until)
    print_prune_report(report)
    return 0


def print_prune_report(report: PruneReport) -> None:
    """Docker's lines, and what they mean: a removed record is a step that runs again, even when its layers stay."""
    if report.removed_keys or report.cache_mounts_removed:
        print("Deleted build cache objects:")
        for key in report.removed_keys:
            print(key.hex[:_ID_LENGTH])
        for record in report.cache_mounts_removed:
            print(record.folder[:_ID_LENGTH])
        print()
        records = len(report.removed_keys)
        layers = len(report.layers_removed)
        print(
            f"Removed {records} cache record{'s' if records != 1 else ''} (their steps run again on the next build) "
            f"and {layers} layer{'s' if layers != 1 else ''} nothing else used; layers of images were kept."
        )
    print(f"Total reclaimed space: {human_size(report.bytes_freed)}")
