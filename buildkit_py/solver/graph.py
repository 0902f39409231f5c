"""The build graph: ops as networkx nodes keyed by digest, an edge from each input to the op that reads it."""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx

from ..digest import Digest
from .ops import Op, OpMeta


class BuildGraph:
    def __init__(self) -> None:
        self._graph: nx.DiGraph = nx.DiGraph()

    def add(self, op: Op, meta: OpMeta | None = None) -> Digest:
        """Add `op` (its inputs must already be in the graph); an identical op is stored once, first meta wins."""
        digest = op.digest
        if digest not in self._graph:
            self._graph.add_node(digest, op=op, meta=meta or OpMeta())
            for input_digest in op.inputs():
                if input_digest not in self._graph:
                    raise KeyError(f"input {input_digest} of {op.kind} op is not in the graph")
                self._graph.add_edge(input_digest, digest)
        return digest

    def op(self, digest: Digest) -> Op:
        op: Op = self._graph.nodes[digest]["op"]
        return op

    def meta(self, digest: Digest) -> OpMeta:
        meta: OpMeta = self._graph.nodes[digest]["meta"]
        return meta

    def __contains__(self, digest: object) -> bool:
        return digest in self._graph

    def __len__(self) -> int:
        return int(self._graph.number_of_nodes())

    def subgraph_for(self, targets: list[Digest]) -> BuildGraph:
        """Only the ops that `targets` need: stages nothing depends on are pruned here."""
        needed: set[Digest] = set(targets)
        for target in targets:
            needed |= nx.ancestors(self._graph, target)
        pruned = BuildGraph()
        pruned._graph = self._graph.subgraph(needed).copy()
        return pruned

    def topological(self) -> Iterator[Digest]:
        return iter(nx.lexicographical_topological_sort(self._graph, key=str))

    def inputs_of(self, digest: Digest) -> tuple[Digest, ...]:
        return self.op(digest).inputs()

    def consumers_of(self, digest: Digest) -> tuple[Digest, ...]:
        return tuple(self._graph.successors(digest))

    @property
    def networkx(self) -> nx.DiGraph:
        return self._graph
