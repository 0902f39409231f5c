"""pybuild ps: list containers, with Docker's columns, filters and --format."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from ..errors import ContainerError
from .common import open_store
from .container_common import error
from .formatting import age_of, table

_COLUMNS = ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("ps", help="list containers", description="List containers.")
    parser.add_argument("-a", "--all", action="store_true", help="show all containers (default: running ones)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only ids")
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate ids and commands")
    parser.add_argument("-f", "--filter", action="append", default=[], help="status=, name=, id=, label=, exited=")
    parser.add_argument("--format", default=None, help="a Go template such as '{{.ID}}\\t{{.Names}}', or json")
    parser.add_argument("-n", "--last", type=int, default=-1, help="the last N created containers")
    parser.add_argument("-l", "--latest", action="store_true", help="the latest created container")
    parser.set_defaults(func=run)


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _fields(row: Any, no_trunc: bool) -> dict[str, str]:
    # lazy: the container modules load when `ps` runs, not for `--help`
    from ..container.spec import ContainerSpec, ports_from_json
    from ..container.status import created_text, status_text

    spec = ContainerSpec.from_json(row.spec)
    command = spec.command_text()
    return {
        "ID": row.container_id if no_trunc else row.container_id[:12],
        "Image": row.image_name,
        "Command": json.dumps(command if no_trunc else _ellipsis(command, 20), ensure_ascii=False),
        "CreatedAt": created_text(row.created),
        "RunningFor": age_of(row.created),
        "Ports": ", ".join(str(port) for port in ports_from_json(row.ports)),  # while it runs, as Docker's
        "State": row.state,
        "Status": status_text(row),
        "Names": row.name,
        "Labels": ",".join(f"{key}={value}" for key, value in spec.labels),
        "Mounts": ",".join(mount.source if mount.kind == "volume" else mount.target for mount in spec.mounts),
    }


def _matches(row: Any, filters: list[tuple[str, str]]) -> bool:
    from ..container.spec import ContainerSpec  # lazy: as in _fields

    by_key: dict[str, list[str]] = {}
    for key, value in filters:
        by_key.setdefault(key, []).append(value)
    labels = dict(ContainerSpec.from_json(row.spec).labels)
    for key, values in by_key.items():
        if key == "status" and row.state not in values:
            return False
        if key == "name" and not any(re.search(value, row.name) for value in values):
            return False
        if key == "id" and not any(row.container_id.startswith(value) for value in values):
            return False
        if key == "exited" and (row.state != "exited" or str(row.exit_code) not in values):
            return False
        if key == "ancestor" and not any(value in (row.image_name, row.image_id) for value in values):
            return False
        if key == "label":
            for value in values:
                name, equals, wanted = value.partition("=")
                if name not in labels or (equals and labels[name] != wanted):
                    return False
    return True


def _parse_filters(texts: list[str]) -> list[tuple[str, str]]:
    filters = []
    for text in texts:
        key, equals, value = text.partition("=")
        if not equals or key not in ("status", "name", "id", "label", "exited", "ancestor"):
            raise ContainerError(f"Invalid filter '{key}'")
        if key == "status" and value not in (
            "created",
            "restarting",
            "running",
            "removing",
            "paused",
            "exited",
            "dead",
        ):
            raise ContainerError(f"Invalid filter 'status={value}'")
        filters.append((key, value))
    return filters


def _render(template: str, item: dict[str, str]) -> str:
    return _FIELD.sub(lambda match: item.get(match.group(1), ""), template)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `ps` runs, not for `--help`
    from ..container.lifecycle import all_containers

    try:
        filters = _parse_filters(args.filter)
    except ContainerError as failure:
        error(failure)
        return 1
    store = open_store(args)
    rows = all_containers(store)
    show_all = args.all or any(key in ("status", "exited") for key, _ in filters) or args.last > 0 or args.latest
    rows = [row for row in rows if (show_all or row.state in ("running", "paused")) and _matches(row, filters)]
    if args.latest:
        rows = rows[:1]
    elif args.last > 0:
        rows = rows[: args.last]
    if args.quiet:
        for row in rows:
            print(row.container_id if args.no_trunc else row.container_id[:12])
        return 0
    fields = [_fields(row, args.no_trunc) for row in rows]
    if args.format is None or args.format == "table":
        keys = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")
        print(table([list(_COLUMNS)] + [[item[key] for key in keys] for item in fields]))
        return 0
    if args.format == "json":
        for item in fields:
            print(json.dumps(item))
        return 0
    template = args.format.encode().decode("unicode_escape")
    is_table = template.startswith("table")
    template = template.removeprefix("table").lstrip()
    lines = [_render(template, item) for item in fields]
    if is_table:
        header = _FIELD.sub(lambda match: _HEADERS.get(match.group(1), match.group(1).upper()), template)
        cells = [line.split("\t") for line in [header, *lines]]
        if all(len(row) == len(cells[0]) for row in cells):
            print(table(cells))
            return 0
        lines = [header, *lines]
    for line in lines:
        print(line)
    return 0
