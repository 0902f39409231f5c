"""pybuild inspect: an image's config as JSON, shaped like `docker image inspect`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import ImageNotFound, StoreError
from ..image.config import DOCKER_EMPTY_CONTAINER_CONFIG
from ..image.stored import image_config
from .cmd_container import container_document, format_path
from .common import open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show an image's configuration", description="Show images' configuration as JSON."
    )
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("-f", "--format", help="print only this top-level key, e.g. Config or Id")
    parser.set_defaults(func=run)


def inspect_image(store: Any, name: str) -> dict[str, Any]:
    image_id = store.resolve(name)
    config = image_config(store, image_id)
    raw = json.loads(store.images.config_bytes(image_id))
    size = sum(store.layers.size(diff_id) for diff_id in config.diff_ids)
    return {
        "Id": str(image_id),
        "RepoTags": store.tags.of(image_id),
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": config.created,
        "Author": config.author,
        "Config": {**DOCKER_EMPTY_CONTAINER_CONFIG, **config.config.to_json()},
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": size,
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in config.diff_ids]},
        "History": raw.get("history", []),
    }


def run(args: argparse.Namespace) -> int:
    store = open_store(args)
    results = []
    status = 0
    for name in args.names:
        try:
            results.append(inspect_image(store, name))
        except ImageNotFound as error:
            try:
                results.append(container_document(store, name))  # like `docker inspect`: images, then containers
            except StoreError:
                print(f"Error: {error}", file=__import__("sys").stderr)
                status = 1
    if args.format and "{{" in args.format and "." in args.format.strip("{} .")[:-1]:
        for result in results:
            print(format_path(result, args.format))
    elif args.format:
        key = args.format.strip("{} .")
        for result in results:
            value = result.get(key)
            print(value if isinstance(value, str) else json.dumps(value))
    else:
        print(json.dumps(results, indent=4))
    return status
