"""The critical path of a build: the chain of steps, each waiting on the one before, that takes longest.

However many steps run in parallel, a build takes at least as long as this chain; shortening any other step does not
make it faster. Steps are weighed by their last recorded run time; when no step has one (nothing ran yet), each
counts as one, and the path is the longest chain of steps. Only `pybuild graph` imports this module: networkx
costs a quarter of a second to import, more than a no-op build takes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from ..digest import Digest
from .graph import BuildGraph

__all__ = ["CriticalPath", "critical_path"]

_START = "start"


@dataclass(frozen=True)
class CriticalPath:
    """The steps of the longest chain in build order, and its length: seconds when `by_duration`, else steps.
    A step without a recorded time counts 0 seconds when others have one."""

    steps: tuple[Digest, ...]
    length: float
    by_duration: bool


def critical_path(graph: BuildGraph, steps: Collection[Digest], durations: Mapping[Digest, float]) -> CriticalPath:
    """The critical path through `steps` (the ops of `graph` that are build steps; sources such as the base image
    or the build context take no time here). `durations` are seconds by step."""
    by_duration = any(digest in durations for digest in steps)

    def weight(digest: Digest) -> float:
        return durations.get(digest, 0.0) if by_duration else 1.0

    # networkx weighs edges, so each edge carries the weight of the step it leads to, and a start node leads to
    # every step: the heaviest path from it weighs every step on it once.
    dag: Any = graph.networkx.subgraph(steps).copy()
    for _, consumer, attributes in dag.edges(data=True):
        attributes["weight"] = weight(consumer)
    dag.add_node(_START)
    for digest in graph.topological():
        if digest in steps:
            dag.add_edge(_START, digest, weight=weight(digest))
    path = [node for node in nx.dag_longest_path(dag, weight="weight") if node != _START]
    return CriticalPath(steps=tuple(path), length=sum(weight(digest) for digest in path), by_duration=by_duration)
