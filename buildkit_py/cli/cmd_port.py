"""pybuild port: a running container's published ports, and the host ports they were given."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "port",
        help="list a container's port mappings",
        description="List port mappings, or look up the public address of one private port (PORT[/PROTO]).",
    )
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("private", nargs="?", default=None, metavar="PRIVATE_PORT[/PROTO]")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `port` runs, not for `--help`
    from ..container.lifecycle import find
    from ..container.spec import ports_from_json

    try:
        store = open_store(args)
        row = find(store, args.container)
    except BuildError as failure:
        error(failure)
        return 1
    ports = sorted(ports_from_json(row.ports), key=lambda port: (port.container_port, port.protocol))
    if args.private is None:
        for port in ports:
            print(f"{port.private} -> {port.host_ip or '0.0.0.0'}:{port.host_port}")
        return 0
    number, _, protocol = args.private.partition("/")
    wanted = f"{number}/{protocol or 'tcp'}"
    matching = [port for port in ports if port.private == wanted]
    if not matching:
        error(f"No public port '{wanted}' published for {args.container}")
        return 1
    for port in matching:
        print(f"{port.host_ip or '0.0.0.0'}:{port.host_port}")
    return 0
