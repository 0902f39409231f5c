"""pybuild build: build an image from a Dockerfile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import open_store

if TYPE_CHECKING:
    from ..builder import BuildOptions


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
    parser.add_argument(
        "--network",
        choices=("default", "none", "host"),
        default="default",
        help="RUN's network: its own namespace with outbound access (default), none, or the host's (not isolated)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="ENTITLEMENT",
        help="let the Dockerfile use network.host (RUN --network=host) or security.insecure (RUN --security=insecure)",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="id=ID[,src=FILE|env=VAR]",
        help="a secret RUN --mount=type=secret can read (repeatable); never stored in the image or the cache",
    )
    parser.add_argument(
        "--ssh",
        action="append",
        default=[],
        metavar="ID[=SOCKET|KEY[,KEY]]",
        help="an ssh agent RUN --mount=type=ssh can use (repeatable): default is $SSH_AUTH_SOCK; key files get a "
        "private agent",
    )
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


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    """The BuildOptions the flags of `build` (or of a command sharing some of them, such as `graph`) ask for."""
    from ..builder import BuildOptions
    from ..session import parse_secret, parse_ssh

    allow = frozenset(item.strip() for value in getattr(args, "allow", []) for item in value.split(",") if item.strip())
    return BuildOptions(
        context=Path(args.context),
        dockerfile=None if args.file in (None, "-") else args.file,
        dockerfile_text=sys.stdin.buffer.read() if args.file == "-" else None,
        tags=tuple(getattr(args, "tag", ())),
        target=args.target,
        build_args=_resolved_build_args(args.build_arg),
        no_cache=getattr(args, "no_cache", False),
        no_cache_stages=tuple(getattr(args, "no_cache_filter", ())),
        network=args.network,
        allow=allow,
        jobs=getattr(args, "jobs", None),
        secrets=tuple(parse_secret(text) for text in getattr(args, "secret", ())),
        ssh=tuple(parse_ssh(text) for text in getattr(args, "ssh", ())),
    )


def run(args: argparse.Namespace) -> int:
    from .. import builder
    from .progress import make_progress

    store = open_store(args)
    options = options_from_args(args)
    if args.explain:
        for number, name, state in builder.explain(options, store=store):
            print(f"#{number} {name}: {state}")
        return 0
    progress = make_progress("quiet" if args.quiet else args.progress)
    result = builder.build(options, progress=progress, store=store)
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
