"""pybuild volume: create, list, inspect and remove named volumes."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import BuildError
from .common import help_without_command, open_store
from .container_common import error, for_each, print_pruned
from .formatting import table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("volume", help="manage volumes", description="Manage named volumes.")
    commands = parser.add_subparsers(dest="volume_command", metavar="COMMAND")
    help_without_command(parser)
    create = commands.add_parser("create", help="create a volume")
    create.add_argument("name", nargs="?", default=None, metavar="NAME")
    create.add_argument("-l", "--label", action="append", default=[], help="set a label (KEY=VALUE)")
    create.set_defaults(func=_create)
    listing = commands.add_parser("ls", aliases=["list"], help="list volumes")
    listing.add_argument("-q", "--quiet", action="store_true", help="only names")
    listing.set_defaults(func=_list)
    inspect = commands.add_parser("inspect", help="show volumes as JSON")
    inspect.add_argument("names", nargs="+", metavar="VOLUME")
    inspect.set_defaults(func=_inspect)
    remove = commands.add_parser("rm", aliases=["remove"], help="remove volumes")
    remove.add_argument("-f", "--force", action="store_true", help="no error for a missing volume")
    remove.add_argument("names", nargs="+", metavar="VOLUME")
    remove.set_defaults(func=_remove)
    prune = commands.add_parser("prune", help="remove unused anonymous volumes (all unused ones with --all)")
    prune.add_argument("-a", "--all", action="store_true", help="also unused named volumes")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask (pybuild never asks)")
    prune.set_defaults(func=_prune)


def _create(args: argparse.Namespace) -> int:
    import secrets  # lazy: secrets (random, hmac) only to name an anonymous volume

    store = open_store(args)
    name = args.name or secrets.token_hex(32)
    labels = dict(label.partition("=")[::2] for label in args.label)
    try:
        store.volumes.ensure(name, labels, anonymous=args.name is None)
    except BuildError as failure:
        error(failure)
        return 1
    print(name)
    return 0


def _list(args: argparse.Namespace) -> int:
    store = open_store(args)
    volumes = store.volumes.all()
    if args.quiet:
        for volume in volumes:
            print(volume.name)
        return 0

    print(table([["DRIVER", "VOLUME NAME"]] + [["local", volume.name] for volume in volumes]))
    return 0


def _document(volume: Any) -> dict[str, Any]:
    # lazy: the container modules load when `volume inspect` runs, not for `--help`
    from ..container.status import timestamp

    return {
        "CreatedAt": timestamp(volume.created),
        "Driver": "local",
        "Labels": dict(volume.labels) or None,
        "Mountpoint": str(volume.mountpoint),
        "Name": volume.name,
        "Options": None,
        "Scope": "local",
    }


def _inspect(args: argparse.Namespace) -> int:
    store = open_store(args)
    found = []
    status = 0
    for name in args.names:
        try:
            found.append(_document(store.volumes.get(name)))
        except BuildError as failure:
            error(failure)
            status = 1
    print(json.dumps(found, indent=4))
    return status


def _remove(args: argparse.Namespace) -> int:
    store = open_store(args)

    def remove(name: str) -> None:
        store.volumes.remove(name, force=args.force)
        print(name)

    return for_each(args.names, remove)


def _prune(args: argparse.Namespace) -> int:
    store = open_store(args)
    from ..store.cachemounts import tree_size  # lazy: only prune measures the volumes' trees

    removed = []
    for volume in store.volumes.all():
        if (volume.anonymous or args.all) and not store.volumes.users(volume.name):
            size = tree_size(volume.mountpoint)
            try:
                store.volumes.remove(volume.name)
                removed.append((volume.name, size))
            except BuildError:
                continue
    print_pruned("Deleted Volumes:", removed)
    return 0
