"""The build graph: ops keyed by digest, an edge from each input to the op that reads it.

The solver's own walks (ancestors, topological order) are done here on plain dicts: importing networkx costs about
a quarter of a second, more than a whole no-op rebuild may take. `networkx` hands out the same graph as an
`nx.DiGraph` for analysis off the build path (`critical_path.py`, for `pybuild graph`)."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..digest import Digest
from .ops import Op, OpMeta

if TYPE_CHECKING:
    import networkx as nx


class BuildGraph:
    def __init__(self) -> None:
        self._ops: dict[Digest, Op] = {}
        self._metas: dict[Digest, OpMeta] = {}
        self._consumers: dict[Digest, list[Digest]] = {}

    def add(self, op: Op, meta: OpMeta | None = None) -> Digest:
        """Add `op` (its inputs must already be in the graph); an identical op is stored once, first meta wins."""
        digest = op.digest
        if digest not in self._ops:
            for input_digest in op.inputs():
                if input_digest not in self._ops:
                    raise KeyError(f"input {input_digest} of {op.kind} op is not in the graph")
            self._ops[digest] = op
            self._metas[digest] = meta or OpMeta()
            self._consumers[digest] = []
            for input_digest in dict.fromkeys(op.inputs()):
                self._consumers[input_digest].append(digest)
        return digest

    def op(self, digest: Digest) -> Op:
        return self._ops[digest]

    def meta(self, digest: Digest) -> OpMeta:
        return self._metas[digest]

    def __contains__(self, digest: object) -> bool:
        return digest in self._ops

    def __len__(self) -> int:
        return len(self._ops)

    def ancestors(self, digest: Digest) -> set[Digest]:
        found: set[Digest] = set()
        pending = list(self._ops[digest].inputs())
        while pending:
            current = pending.pop()
            if current not in found:
                found.add(current)
                pending.extend(self._ops[current].inputs())
        return found

    def subgraph_for(self, targets: list[Digest]) -> BuildGraph:
        """Only the ops that `targets` need: stages nothing depends on are pruned here."""
        needed: set[Digest] = set(targets)
        for target in targets:
            needed |= self.ancestors(target)
        pruned = BuildGraph()
        for digest in self.topological():
            if digest in needed:
                pruned.add(self._ops[digest], self._metas[digest])
        return pruned

    def topological(self) -> Iterator[Digest]:
        """Inputs before consumers; among ops that are ready at once, the smallest digest first (stable order)."""
        waiting = {digest: len(set(op.inputs())) for digest, op in self._ops.items()}
        ready = [(str(digest), digest) for digest, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        while ready:
            _, digest = heapq.heappop(ready)
            yield digest
            for consumer in self._consumers[digest]:
                waiting[consumer] -= 1
                if waiting[consumer] == 0:
                    heapq.heappush(ready, (str(consumer), consumer))

    def inputs_of(self, digest: Digest) -> tuple[Digest, ...]:
        return self._ops[digest].inputs()

    def consumers_of(self, digest: Digest) -> tuple[Digest, ...]:
        return tuple(self._consumers[digest])

    @property
    def networkx(self) -> nx.DiGraph:
        import networkx as nx  # lazy: networkx costs 0.25 s; only `pybuild graph` asks for it

        graph: Any = nx.DiGraph()
        for digest, op in self._ops.items():
            graph.add_node(digest, op=op, meta=self._metas[digest])
            for input_digest in op.inputs():
                graph.add_edge(input_digest, digest)
        return graph
