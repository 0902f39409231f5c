"""pybuild build: build an image from a Dockerfile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import open_store


def _build_arg(text: str) -> tuple[str, str | None]:
    key, equals, value = text.partition("=")
    return key, value if equals else None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build an image from a Dockerfile",
        description="Build an image from a Dockerfile and a context folder, reusing every step already built.",
    )
    parser.add_argument("context", help="the build context folder")
    parser.add_argument("-t", "--tag", action="append", default=[], help="name[:tag] for the image (repeatable)")
    parser.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - reads stdin)")
    parser.add_argument(
        "--build-arg", action="append", default=[], type=_build_arg, help="set a build-time variable K=V"
    )
    parser.add_argument("--target", help="build this stage and what it needs, nothing else")
    parser.add_argument("--no-cache", action="store_true", help="run every step, ignoring the build cache")
    parser.add_argument(
        "--no-cache-filter",
        action="append",
        default=[],
        metavar="STAGE",
        help="ignore the cache for this stage and the steps that read it",
    )
    parser.add_argument("--network", choices=("host", "none", "default"), default="host", help="RUN's network")
    parser.add_argument(
        "--progress", choices=("auto", "plain", "tty", "quiet"), default="auto", help="how to show progress"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    parser.add_argument("--iidfile", help="write the image id to this file")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="steps run at once (default: 2 per CPU, at least 4; CPU-bound work stays at one per CPU)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="say for every step whether it is cached, and why not, without building"
    )
    parser.add_argument(
        "-o", "--output", action="append", default=[], help="also export: type=docker|oci|tar|local,dest=PATH"
    )
    parser.add_argument("--graph", metavar="FILE", help="write the build graph with cache states: FILE.dot or FILE.svg")
    parser.set_defaults(func=run)


def _resolved_build_args(pairs: list[tuple[str, str | None]]) -> dict[str, str]:
    import os

    values: dict[str, str] = {}
    for key, value in pairs:
        if value is None:
            if key in os.environ:
                values[key] = os.environ[key]
        else:
            values[key] = value
    return values


def run(args: argparse.Namespace) -> int:
    from .. import builder
    from .progress import make_progress

    store = open_store(args)
    dockerfile_text = sys.stdin.buffer.read() if args.file == "-" else None
    dockerfile = None if args.file in (None, "-") else args.file
    network = "host" if args.network == "default" else args.network
    build_args = _resolved_build_args(args.build_arg)
    if args.explain:
        for number, name, state in builder.explain(
            Path(args.context),
            dockerfile=dockerfile,
            dockerfile_text=dockerfile_text,
            target=args.target,
            build_args=build_args,
            network=network,
            store=store,
        ):
            print(f"#{number} {name}: {state}")
        return 0
    progress = make_progress("quiet" if args.quiet else args.progress)
    result = builder.build(
        Path(args.context),
        dockerfile=dockerfile,
        dockerfile_text=dockerfile_text,
        tags=args.tag,
        target=args.target,
        build_args=build_args,
        no_cache=args.no_cache,
        no_cache_stages=args.no_cache_filter,
        network=network,
        jobs=args.jobs,
        progress=progress,
        store=store,
    )
    if args.output:
        from ..image.export import export_image

        for spec in args.output:
            export_image(store, result.image_id, spec)
    if args.graph:
        from ..solver.dot import solved_dot, write_graph

        write_graph(Path(args.graph), solved_dot(result.plan.graph.subgraph_for([result.plan.target]), result.stats))
    if args.iidfile:
        Path(args.iidfile).write_text(str(result.image_id))
    if args.quiet:
        print(result.image_id)
    else:
        print(f"writing image {result.image_id}", file=sys.stderr)
        for tag in result.tags:
            print(f"naming to {tag}", file=sys.stderr)
        print(f"Successfully built {result.image_id.short}")
        for tag in result.tags:
            print(f"Successfully tagged {tag}")
    return 0
