"""pybuild logs: a container's output, from its json-file log."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("logs", help="show a container's logs", description="Fetch a container's logs.")
    parser.add_argument("-f", "--follow", action="store_true", help="follow the output while it runs")
    parser.add_argument("-n", "--tail", default="all", help="how many lines from the end (default: all)")
    parser.add_argument("-t", "--timestamps", action="store_true", help="show each line's time")
    parser.add_argument("--since", default=None, help="only after this time (RFC 3339, Unix time, or 10m)")
    parser.add_argument("--until", default=None, help="only before this time")
    parser.add_argument("container", metavar="CONTAINER")
    parser.set_defaults(func=run)


def _print(entry: Any, timestamps: bool) -> None:
    from ..container.logs import rfc3339_nano  # lazy: as in run

    text = entry.log.encode(errors="surrogateescape")
    if timestamps:
        moment = rfc3339_nano(entry.time_ns)
        head, _, fraction = moment.rstrip("Z").partition(".")
        text = f"{head}.{fraction.ljust(9, '0')}Z ".encode() + text
    os.write(1 if entry.stream == "stdout" else 2, text)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `logs` runs, not for `--help`
    from ..container.layout import ContainerLayout
    from ..container.lifecycle import RUNNING_STATES, find
    from ..container.logread import follow_entries, parse_log_time, select_entries

    try:
        store = open_store(args)
        row = find(store, args.container)
        tail = None if args.tail in ("all", "-1") else int(args.tail)
        since = parse_log_time(args.since) if args.since else None
        until = parse_log_time(args.until) if args.until else None
    except (BuildError, ValueError) as failure:
        error(failure)
        return 1
    path = ContainerLayout(store.root, row.container_id).log
    entries, offset = select_entries(path, tail, since, until)
    for entry in entries:
        _print(entry, args.timestamps)
    if not args.follow or row.state not in RUNNING_STATES:
        return 0
    try:
        for entry in follow_entries(path, offset, row.monitor_pid, row.monitor_start):
            if until is not None and entry.time_ns > until:
                return 0
            _print(entry, args.timestamps)
    except KeyboardInterrupt:
        return 0
    return 0
