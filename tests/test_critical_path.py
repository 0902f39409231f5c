"""Step run times are recorded and found again; the critical path is the heaviest chain of steps (networkx)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_solver import CountingWorker, MemoryCache, linear_graph

from buildkit_py.digest import Digest
from buildkit_py.solver.critical_path import critical_path
from buildkit_py.solver.explain import StepLog
from buildkit_py.solver.graph import BuildGraph
from buildkit_py.solver.ops import ContextSource, CopyAction, ExecOp, FileOp, OpMeta, ScratchSource
from buildkit_py.solver.solver import Solver
from buildkit_py.store import Store


def diamond() -> tuple[BuildGraph, dict[str, Digest]]:
    """scratch -> a -> b -> d, and scratch -> c -> d (d copies from c onto b); the context feeds b."""
    graph = BuildGraph()
    scratch = graph.add(ScratchSource())
    context = graph.add(ContextSource(name="context", path="/nowhere"))
    a = graph.add(ExecOp(rootfs=scratch, args=("a",)), OpMeta(name="RUN a"))
    b = graph.add(FileOp(base=a, actions=(CopyAction(source=context, src="f", dest="/f"),)), OpMeta(name="COPY f /f"))
    c = graph.add(ExecOp(rootfs=scratch, args=("c",)), OpMeta(name="RUN c"))
    d = graph.add(FileOp(base=b, actions=(CopyAction(source=c, src="/out", dest="/out"),)), OpMeta(name="COPY out"))
    return graph, {"a": a, "b": b, "c": c, "d": d}


@pytest.mark.parametrize(
    ("seconds", "expected", "length", "by_duration"),
    [
        ({}, "abd", 3, False),  # nothing ran: the chain of most steps
        ({"a": 1, "b": 1, "c": 5, "d": 1}, "cd", 6, True),  # one slow step outweighs two quick ones
        ({"a": 2, "b": 2, "c": 3, "d": 1}, "abd", 5, True),
        ({"a": 1, "b": 1, "d": 1}, "abd", 3, True),  # c never ran: it counts nothing
    ],
)
def test_critical_path_of_a_known_graph(
    seconds: dict[str, float], expected: str, length: float, by_duration: bool
) -> None:
    graph, ops = diamond()
    durations = {ops[name]: value for name, value in seconds.items()}
    found = critical_path(graph, list(ops.values()), durations)
    assert found.steps == tuple(ops[name] for name in expected)
    assert found.length == length and found.by_duration is by_duration


def test_run_times_are_recorded_and_found_by_key_then_by_instruction(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    graph, target = linear_graph(["make", "make install"])
    log = StepLog(store.steps, project="app")
    try:
        solver = Solver(graph, CountingWorker(graph), MemoryCache(), explainer=log)
        solved = solver.solve([target])
        assert set(solved.stats.durations) == solved.stats.executed == set(solver.numbers)
        for digest, seconds in solved.stats.durations.items():
            meta = graph.meta(digest)
            assert log.last_duration(solved.keys[digest], meta.name, meta.stage) == seconds
        assert solver.last_durations(solved.keys) == solved.stats.durations

        # The same instruction with another key (its base changed) takes its last run time from the one that ran.
        changed, changed_target = linear_graph(["make -j2", "make install"])
        explained = Solver(changed, CountingWorker(changed), MemoryCache(), explainer=log)
        keys = explained.explain_steps([changed_target]).keys
        found = explained.last_durations(keys)
        install = next(d for d in changed.topological() if changed.meta(d).name == "RUN make install")
        old_install = next(d for d in graph.topological() if graph.meta(d).name == "RUN make install")
        assert found == {install: solved.stats.durations[old_install]}
    finally:
        log.close()
    other = StepLog(store.steps, project="another")
    try:
        meta = graph.meta(target)
        assert other.last_duration(Digest("blake3", "0" * 64), meta.name, meta.stage) is None
    finally:
        other.close()
