"""The build graph as JSON, for scripts: `pybuild graph --format json`.

    {"nodes": [{"id", "number", "name", "stage", "kind", "cache", "reason", "duration"}, ...],
     "edges": [{"from", "to"}, ...],
     "critical_path": {"steps": [id, ...], "numbers": [N, ...], "length", "unit": "seconds" | "steps"}}

A node is an op, named by its digest. Sources (scratch, a base image, the build context) have no number and no cache
state. `cache` is "hit", "miss" or "not needed"; `reason` says why a miss would run; `duration` is the step's last
recorded run time in seconds. Nodes and edges come in build (topological) order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..digest import Digest
from .dot import source_label, stage_of
from .graph import BuildGraph

if TYPE_CHECKING:
    from .critical_path import CriticalPath

__all__ = ["graph_json"]


def graph_json(
    graph: BuildGraph,
    states: Mapping[Digest, str],
    reasons: Mapping[Digest, str],
    numbers: Mapping[Digest, int],
    durations: Mapping[Digest, float],
    critical: CriticalPath,
) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for digest in graph.topological():
        op = graph.op(digest)
        meta = graph.meta(digest)
        number = numbers.get(digest)
        nodes.append(
            {
                "id": str(digest),
                "number": number,
                "name": meta.name if number is not None else source_label(op, meta.name),
                "stage": stage_of(meta.name, meta.stage),
                "kind": op.kind,
                "cache": states.get(digest),
                "reason": reasons.get(digest),
                "duration": durations.get(digest),
            }
        )
        edges.extend({"from": str(source), "to": str(digest)} for source in graph.inputs_of(digest))
    return {
        "nodes": nodes,
        "edges": edges,
        "critical_path": {
            "steps": [str(digest) for digest in critical.steps],
            "numbers": [numbers[digest] for digest in critical.steps if digest in numbers],
            "length": critical.length,
            "unit": "seconds" if critical.by_duration else "steps",
        },
    }
