"""pybuild graph: the build's DAG with each step's cache state, as Graphviz DOT (or SVG/PNG through `dot`) or JSON,
and its critical path: the chain of steps that bounds the build's time."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fs.output import check_output_path, write_output
from .cmd_build import _build_arg, options_from_args
from .common import open_store

if TYPE_CHECKING:
    from ..builder import GraphStates
    from ..solver.critical_path import CriticalPath


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="draw the build graph with each step's cache state",
        description="Write the build's steps as a Graphviz graph without building: cached steps green, steps that "
        "would run orange (with the reason), steps not needed because a later one is cached grey. The critical "
        "path (the longest chain of steps by their last recorded run time, or by count when none ran yet) goes to "
        "stderr, or into the JSON.",
    )
    parser.add_argument("context", help="the build context folder")
    parser.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - reads stdin)")
    parser.add_argument(
        "--build-arg", action="append", default=[], type=_build_arg, help="set a build-time variable K=V"
    )
    parser.add_argument("--target", help="draw this stage and what it needs")
    parser.add_argument("--network", choices=("default", "none", "host"), default="default", help="RUN's network")
    parser.add_argument(
        "--format", choices=("dot", "json"), default="dot", help="dot (default) or json: nodes, edges, critical path"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="dot: FILE.dot (text) or FILE.svg / FILE.png (needs `dot`); json: any FILE; default stdout",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the builder loads when the command runs, not for `--help`
    from .. import builder
    from ..solver.critical_path import critical_path

    if args.output is not None:
        check_output_path(args.output, "graph")
    store = open_store(args)
    found = builder.graph_states(options_from_args(args), store=store)
    critical = critical_path(found.graph, found.numbers, found.durations)
    if args.format == "json":
        _write_json(args.output, found, critical)
    else:
        _write_dot(args.output, found)
        sys.stderr.write(describe_critical_path(found, critical))
    return 0


def _write_json(output: str | None, found: GraphStates, critical: CriticalPath) -> None:
    from ..solver.graph_json import graph_json  # lazy: only --format json

    document = graph_json(found.graph, found.states, found.reasons, found.numbers, found.durations, critical)
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_output(output, text, "graph")


def _write_dot(output: str | None, found: GraphStates) -> None:
    from ..solver.dot import to_dot, write_graph  # lazy: only --format dot

    text = to_dot(found.graph, found.states, found.reasons, found.numbers)
    if output is None:
        sys.stdout.write(text)
    else:
        write_graph(Path(output), text)


def describe_critical_path(found: GraphStates, critical: CriticalPath) -> str:
    """`critical path: 3 steps, 12.31 s by last recorded run times` and a line per step."""
    count = len(critical.steps)
    head = f"critical path: {count} step{'s' if count != 1 else ''}"
    if critical.by_duration:
        head += f", {critical.length:.2f} s by last recorded run times"
    else:
        head += " (no step has run yet: the longest chain by step count)"
    lines = [head]
    for digest in critical.steps:
        name = found.graph.meta(digest).name
        duration = found.durations.get(digest)
        took = f"  {duration:.2f} s" if duration is not None else "  (no recorded run)" if critical.by_duration else ""
        lines.append(f"  #{found.numbers[digest]} {name}{took}")
    return "\n".join(lines) + "\n"
