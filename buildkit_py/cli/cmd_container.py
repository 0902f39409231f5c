"""pybuild container: `container prune`, `container ls`, `container inspect`."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from ..errors import BuildError
from .common import help_without_command, open_store
from .container_common import error, print_pruned


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("container", help="manage containers", description="Manage containers.")
    commands = parser.add_subparsers(dest="container_command", metavar="COMMAND")
    help_without_command(parser)
    prune = commands.add_parser("prune", help="remove all stopped containers")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask (pybuild never asks)")
    prune.set_defaults(func=_prune)
    inspect = commands.add_parser("inspect", help="show containers as JSON")
    inspect.add_argument("names", nargs="+", metavar="CONTAINER")
    inspect.add_argument("-f", "--format", default=None, help="a {{.Field.Sub}} path to print")
    inspect.set_defaults(func=_inspect)


def _prune(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `container prune` runs, not for `--help`
    from ..container.lifecycle import prune_containers

    store = open_store(args)
    removed = prune_containers(store)
    print_pruned("Deleted Containers:", removed)
    return 0


def container_document(store: Any, name: str) -> dict[str, Any]:
    # lazy: as in _prune, only when a container is inspected
    from ..container.layout import ContainerLayout
    from ..container.lifecycle import find
    from ..container.status import inspect_document

    row = find(store, name)
    volumes = {volume: str(store.volumes.data_path(volume)) for volume in store.containers.volumes_of(row.container_id)}
    return inspect_document(row, str(ContainerLayout(store.root, row.container_id).log), volumes)


def format_path(document: dict[str, Any], template: str) -> str:
    """`{{.State.Status}}`-style templates: dotted paths, printed as Go would (JSON for maps and lists)."""

    def value(match: re.Match[str]) -> str:
        current: Any = document
        for key in match.group(1).split("."):
            current = current.get(key) if isinstance(current, dict) else None
        if isinstance(current, bool):
            return "true" if current else "false"
        if isinstance(current, str | int | float):
            return str(current)
        return json.dumps(current) if current is not None else "<no value>"

    return re.sub(r"\{\{\s*\.([\w.]+)\s*\}\}", value, template)


def _inspect(args: argparse.Namespace) -> int:
    store = open_store(args)
    documents = []
    status = 0
    for name in args.names:
        try:
            documents.append(container_document(store, name))
        except BuildError as failure:
            error(failure)
            status = 1
    if args.format:
        for document in documents:
            print(format_path(document, args.format))
    else:
        print(json.dumps(documents, indent=4))
    return status
