"""pybuild images: list the images in the store."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import open_store
from .formatting import human_age, human_size, table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "images",
        help="list images",
        description="List the images in the store. SIZE is Docker's: the content of the image's layers (their files "
        "and symlinks), not their tars and not what the store keeps besides (see system df).",
    )
    parser.add_argument("repository", nargs="?", help="only images of this repository[:tag]")
    parser.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    parser.add_argument(
        "-a", "--all", action="store_true", help="also untagged images other images were built on (intermediate)"
    )
    parser.add_argument("--no-trunc", action="store_true", help="full image ids")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(func=run)


def _split_tag(tag: str) -> tuple[str, str]:
    name, _, suffix = tag.rpartition(":")
    if "/" in suffix or not name:
        return tag, "<none>"
    return name, suffix


def run(args: argparse.Namespace) -> int:
    # lazy: loaded when the command runs, not for `--help`
    from ..image.lineage import has_children
    from ..image.sizes import content_sizes

    store = open_store(args)
    rows: list[dict[str, str | int]] = []
    chains = store.images.chains()
    sizes = content_sizes(store)
    for image in store.images.summaries():
        if not image.tags and not args.all and has_children(store, image.image_id):
            continue  # an intermediate image, as `docker images` hides them
        size = sum(sizes.get(diff_id, 0) for diff_id in chains.get(image.image_id, ()))
        for tag in image.tags or ["<none>:<none>"]:
            repository, tag_name = _split_tag(tag)
            if args.repository and args.repository not in (repository, tag):
                continue
            rows.append(
                {
                    "Repository": repository,
                    "Tag": tag_name,
                    "ID": str(image.image_id) if args.no_trunc else image.image_id.short,
                    "Created": image.created,
                    "Size": size,
                }
            )
    if args.quiet:
        for row in rows:
            print(row["ID"])
    elif args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        lines = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
        for row in rows:
            lines.append(
                [
                    str(row["Repository"]),
                    str(row["Tag"]),
                    str(row["ID"]),
                    human_age(str(row["Created"])),
                    human_size(int(row["Size"])),
                ]
            )
        print(table(lines))
    return 0
