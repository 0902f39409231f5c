"""pybuild history: an image's steps, newest first, like `docker history`, each tied to its Dockerfile line."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from ..image.stored import image_config
from ..units import docker_size
from .common import open_store
from .formatting import age_of, parse_created, table

_CREATED_BY_WIDTH = 45


def _bool_flag(text: str) -> bool:
    """Docker's bool flags take `--human=false`; argparse hands "=false" through for `-H=false`."""
    value = text.lstrip("=").strip().lower()
    if value in ("1", "t", "true", "yes"):
        return True
    if value in ("0", "f", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "history",
        help="show the history of an image",
        description="Show the history of an image, newest step first; steps built here name their Dockerfile line.",
    )
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    parser.add_argument(
        "-H",
        "--human",
        type=_bool_flag,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="print sizes and dates in human readable format (default true; -H=false for bytes and RFC 3339)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json lines")
    parser.set_defaults(func=run)


def _created(text: str, human: bool) -> tuple[str, str]:
    """(CREATED column, CreatedAt) as docker shows them."""
    timestamp = parse_created(text)
    if timestamp is None:
        return ("N/A", "")
    moment = datetime.fromtimestamp(timestamp, tz=UTC).astimezone()
    created_at = moment.isoformat(timespec="seconds")
    if human:
        return (age_of(timestamp), created_at)
    return (created_at, created_at)


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def rows_of(store: Any, name: str) -> list[dict[str, Any]]:
    """One dict per history entry, newest first, with the size of the layer it made (0 for metadata steps).

    The size is what docker shows: the bytes of the files in the layer (tar headers only are read), not the tar's."""
    # lazy: only with --tree: reading layers loads analyze
    from ..analyze.filetree import read_layer
    from ..analyze.layers import dockerfile_line

    image_id = store.resolve(name)
    config = image_config(store, image_id)
    sizes = iter(config.diff_ids)
    rows = []
    for entry in config.history:
        size = 0
        if not entry.empty_layer:
            diff_id = next(sizes, None)
            if diff_id is not None:
                with store.layers.open(diff_id) as stream:
                    size = read_layer(stream).content_size
        rows.append(
            {
                "id": "<missing>",
                "created": entry.created,
                "created_by": entry.created_by.replace("\t", " "),
                "size": size,
                "comment": entry.comment,
                "dockerfile": dockerfile_line(entry.comment),
            }
        )
    rows.reverse()
    if rows:
        rows[0]["id"] = str(image_id)
    return rows


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rows = rows_of(store, args.image)
    for row in rows:
        if row["id"] != "<missing>" and not args.no_trunc:
            row["id"] = row["id"].split(":", 1)[-1][:12]
    if args.quiet:
        print("\n".join(row["id"] for row in rows))
        return 0
    if args.format == "json":
        for row in rows:
            created, created_at = _created(row["created"], args.human)
            record = {
                "Comment": row["comment"],
                "CreatedAt": created_at,
                "CreatedBy": row["created_by"] if args.no_trunc else _ellipsis(row["created_by"], _CREATED_BY_WIDTH),
                "CreatedSince": created if args.human else "",
                "Dockerfile": row["dockerfile"],
                "ID": row["id"],
                "Size": docker_size(row["size"]) if args.human else str(row["size"]),
            }
            print(json.dumps(record))
        return 0
    table_rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for row in rows:
        created_by = row["created_by"] if args.no_trunc else _ellipsis(row["created_by"], _CREATED_BY_WIDTH)
        comment = row["comment"]
        if row["dockerfile"] and not args.no_trunc:
            comment = row["dockerfile"]
        table_rows.append(
            [
                row["id"],
                _created(row["created"], args.human)[0],
                created_by,
                docker_size(row["size"]) if args.human else str(row["size"]),
                comment,
            ]
        )
    print(table(table_rows))
    return 0
