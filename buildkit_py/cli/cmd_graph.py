"""pybuild graph: the build's DAG with each step's cache state, as Graphviz DOT (or SVG/PNG through `dot`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .cmd_build import _build_arg, options_from_args
from .common import open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="draw the build graph with each step's cache state",
        description="Write the build's steps as a Graphviz graph without building: cached steps green, steps that "
        "would run orange (with the reason), steps not needed because a later one is cached grey.",
    )
    parser.add_argument("context", help="the build context folder")
    parser.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - reads stdin)")
    parser.add_argument(
        "--build-arg", action="append", default=[], type=_build_arg, help="set a build-time variable K=V"
    )
    parser.add_argument("--target", help="draw this stage and what it needs")
    parser.add_argument("--network", choices=("default", "none", "host"), default="default", help="RUN's network")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="FILE.dot (text) or FILE.svg / FILE.png (needs `dot`); default stdout"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import builder
    from ..solver.dot import to_dot, write_graph

    store = open_store(args)
    found = builder.graph_states(options_from_args(args), store=store)
    text = to_dot(found.graph, found.states, found.reasons, found.numbers)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_graph(Path(args.output), text)
    return 0
