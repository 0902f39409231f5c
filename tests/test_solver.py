"""Solver tests with small fake ops: exact proof of what was a hit and what ran."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import pytest

from buildkit_py.digest import Digest, digest_bytes
from buildkit_py.errors import StepError
from buildkit_py.solver.graph import BuildGraph
from buildkit_py.solver.ops import ContextSource, CopyAction, ExecOp, FileOp, MergeOp, Op, OpMeta, ScratchSource
from buildkit_py.solver.progress import ProgressEvent, StepCached, StepStarted
from buildkit_py.solver.solver import Chain, ContentSummary, Solver


class MemoryCache:
    def __init__(self) -> None:
        self.records: dict[Digest, Chain] = {}

    def get(self, key: Digest) -> Chain | None:
        return self.records.get(key)

    def get_many(self, keys: Sequence[Digest]) -> dict[Digest, Chain]:
        return {key: self.records[key] for key in keys if key in self.records}

    def put(self, key: Digest, chain: Chain, description: str = "") -> None:
        self.records[key] = chain


class CountingWorker:
    """Runs an op by appending a layer named after it; counts executions; content comes from a dict per path."""

    def __init__(self, graph: BuildGraph, files: dict[str, bytes] | None = None) -> None:
        self.graph = graph
        self.files = files or {}
        self.executed: list[str] = []
        self.cancelled = 0
        self.barrier: threading.Barrier | None = None
        self.fail_on: str | None = None
        self._lock = threading.Lock()

    def source_chain(self, op: Op) -> Chain | None:
        return () if isinstance(op, ScratchSource | ContextSource) else None

    def content(self, op: Op) -> ContentSummary:
        if not isinstance(op, FileOp):
            return ContentSummary()
        digests: list[Digest | None] = []
        for action in op.actions:
            assert isinstance(action, CopyAction)
            data = self.files.get(action.src, b"")
            digests.append(digest_bytes(data))
        return ContentSummary(tuple(digests))

    def execute(self, op: Op, meta: OpMeta, inputs: Mapping[Digest, Chain], output: Callable[[bytes], None]) -> Chain:
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        if meta.name == self.fail_on:
            raise StepError("exit status 1")
        with self._lock:
            self.executed.append(meta.name)
        base = inputs[op.inputs()[0]]
        return base + (digest_bytes(meta.name.encode(), "sha256"),)

    def cancel(self) -> None:
        self.cancelled += 1


def linear_graph(commands: list[str], copy_src: str | None = None) -> tuple[BuildGraph, Digest]:
    graph = BuildGraph()
    current = graph.add(ScratchSource())
    context = graph.add(ContextSource(name="context", path="/somewhere"))
    if copy_src is not None:
        current = graph.add(
            FileOp(base=current, actions=(CopyAction(source=context, src=copy_src, dest="/app/"),)),
            OpMeta(name=f"COPY {copy_src}"),
        )
    for command in commands:
        current = graph.add(ExecOp(rootfs=current, args=("sh", "-c", command)), OpMeta(name=f"RUN {command}"))
    return graph, current


def solve(graph: BuildGraph, target: Digest, worker: CountingWorker, cache: MemoryCache, **options: object) -> Solver:
    solver = Solver(graph, worker, cache, **options)  # type: ignore[arg-type]
    solver.solve([target])
    return solver


def test_second_build_is_all_hits() -> None:
    graph, target = linear_graph(["a", "b", "c"])
    cache = MemoryCache()
    first = CountingWorker(graph)
    solve(graph, target, first, cache)
    assert first.executed == ["RUN a", "RUN b", "RUN c"]
    second = CountingWorker(graph)
    solve(graph, target, second, cache)
    assert second.executed == []


def test_change_in_the_middle_reruns_it_and_what_follows_only() -> None:
    cache = MemoryCache()
    graph, target = linear_graph(["a", "b", "c"])
    solve(graph, target, CountingWorker(graph), cache)
    graph2, target2 = linear_graph(["a", "B", "c"])
    worker = CountingWorker(graph2)
    solve(graph2, target2, worker, cache)
    assert worker.executed == ["RUN B", "RUN c"]


def test_a_cached_target_touches_nothing_beneath_it() -> None:
    graph, target = linear_graph(["a", "b"])
    cache = MemoryCache()
    solve(graph, target, CountingWorker(graph), cache)
    graph2, target2 = linear_graph(["a", "b"])
    # Forget the first step's record: the target still hits, so "a" must not run again.
    first_key = next(iter(cache.records))
    del cache.records[first_key]
    worker = CountingWorker(graph2)
    solve(graph2, target2, worker, cache)
    assert worker.executed == []


def test_copied_content_decides_hits() -> None:
    cache = MemoryCache()
    graph, target = linear_graph(["a"], copy_src="app.txt")
    solve(graph, target, CountingWorker(graph, {"app.txt": b"v1"}), cache)
    same = CountingWorker(graph, {"app.txt": b"v1"})
    solve(graph, target, same, cache)
    assert same.executed == []
    changed = CountingWorker(graph, {"app.txt": b"v2"})
    solve(graph, target, changed, cache)
    assert changed.executed == ["COPY app.txt", "RUN a"]


def test_context_location_is_not_identity() -> None:
    cache = MemoryCache()
    graph, target = linear_graph(["a"], copy_src="f")
    solve(graph, target, CountingWorker(graph, {"f": b"x"}), cache)
    moved = BuildGraph()
    base = moved.add(ScratchSource())
    context = moved.add(ContextSource(name="context", path="/elsewhere", exclude=("*.tmp",)))
    copy = moved.add(FileOp(base=base, actions=(CopyAction(source=context, src="f", dest="/app/"),)), OpMeta("COPY f"))
    run = moved.add(ExecOp(rootfs=copy, args=("sh", "-c", "a")), OpMeta("RUN a"))
    worker = CountingWorker(moved, {"f": b"x"})
    solve(moved, run, worker, cache)
    assert worker.executed == []


def test_display_names_are_not_identity() -> None:
    cache = MemoryCache()
    graph, target = linear_graph(["a"])
    solve(graph, target, CountingWorker(graph), cache)
    renamed = BuildGraph()
    base = renamed.add(ScratchSource())
    run = renamed.add(ExecOp(rootfs=base, args=("sh", "-c", "a")), OpMeta(name="[stage 9/9] RUN a", stage="x"))
    worker = CountingWorker(renamed)
    solve(renamed, run, worker, cache)
    assert worker.executed == []


def test_no_cache_runs_everything() -> None:
    graph, target = linear_graph(["a", "b"])
    cache = MemoryCache()
    solve(graph, target, CountingWorker(graph), cache)
    worker = CountingWorker(graph)
    solve(graph, target, worker, cache, no_cache=lambda digest: True)
    assert worker.executed == ["RUN a", "RUN b"]


def test_independent_branches_run_concurrently() -> None:
    graph = BuildGraph()
    base = graph.add(ScratchSource())
    left = graph.add(ExecOp(rootfs=base, args=("left",)), OpMeta("left"))
    right = graph.add(ExecOp(rootfs=base, args=("right",)), OpMeta("right"))
    joined = graph.add(FileOp(base=left, actions=(CopyAction(source=right, src="/out", dest="/out"),)), OpMeta("join"))
    worker = CountingWorker(graph)
    # Both branches must be inside execute() at once to pass the barrier; run serially, it would time out.
    worker.barrier = threading.Barrier(2)
    original = worker.execute

    def execute(op: Op, meta: OpMeta, inputs: Mapping[Digest, Chain], output: Callable[[bytes], None]) -> Chain:
        if meta.name == "join":
            worker.barrier = None
        return original(op, meta, inputs, output)

    worker.execute = execute  # type: ignore[method-assign]
    solve(graph, joined, worker, MemoryCache(), jobs=2)
    assert sorted(worker.executed) == ["join", "left", "right"]


def test_a_failure_cancels_and_reports_the_step() -> None:
    graph, target = linear_graph(["a", "b", "c"])
    worker = CountingWorker(graph)
    worker.fail_on = "RUN b"
    with pytest.raises(StepError):
        solve(graph, target, worker, MemoryCache())
    assert worker.executed == ["RUN a"]
    assert worker.cancelled >= 1


def test_progress_reports_cached_steps_and_reasons() -> None:
    graph, target = linear_graph(["a", "b"])
    cache = MemoryCache()
    solve(graph, target, CountingWorker(graph), cache)
    graph2, target2 = linear_graph(["A", "b"])
    events: list[ProgressEvent] = []
    solve(graph2, target2, CountingWorker(graph2), cache, progress=events.append)
    started = [event for event in events if isinstance(event, StepStarted)]
    assert [event.name for event in started] == ["RUN A", "RUN b"]
    assert started[1].reason == "parent step #1 was rebuilt"
    assert not [event for event in events if isinstance(event, StepCached)]


def linked_graph(base_command: str) -> tuple[BuildGraph, Digest, Digest, Digest]:
    """RUN <base_command>, then COPY --link app.txt (a copy on scratch, merged on top), then RUN after:
    (graph, target, the copy's op, the merge)."""
    graph = BuildGraph()
    scratch = graph.add(ScratchSource())
    context = graph.add(ContextSource(name="context", path="/somewhere"))
    base = graph.add(ExecOp(rootfs=scratch, args=("sh", "-c", base_command)), OpMeta(name=f"RUN {base_command}"))
    copy = graph.add(
        FileOp(base=scratch, actions=(CopyAction(source=context, src="app.txt", dest="/app/"),)),
        OpMeta(name="COPY --link app.txt /app/"),
    )
    merge = graph.add(MergeOp(layers=(base, copy)), OpMeta(name="LINK COPY --link app.txt /app/"))
    target = graph.add(ExecOp(rootfs=merge, args=("sh", "-c", "after")), OpMeta(name="RUN after"))
    return graph, target, copy, merge


def test_a_linked_copy_is_reused_on_a_new_base_and_its_layer_stacked_on_it() -> None:
    cache = MemoryCache()
    files = {"app.txt": b"v1"}
    graph, target, copy, merge = linked_graph("base1")
    first = CountingWorker(graph, files)
    first_solver = Solver(graph, first, cache)
    solved = first_solver.solve([target])
    assert first.executed == ["RUN base1", "COPY --link app.txt /app/", "RUN after"]
    assert merge not in first_solver.numbers and len(first_solver.numbers) == 3  # a merge is not a step
    copy_layer = solved.chains[copy]

    graph2, target2, copy2, merge2 = linked_graph("base2")
    assert copy2 == copy  # the copy's op does not name the base
    events: list[ProgressEvent] = []
    second = CountingWorker(graph2, files)
    solved2 = Solver(graph2, second, cache, progress=events.append).solve([target2])
    assert second.executed == ["RUN base2", "RUN after"]
    assert copy in solved2.stats.cached and copy not in solved2.stats.executed
    assert solved2.chains[merge2] == solved2.chains[graph2.op(merge2).inputs()[0]] + copy_layer
    started = {event.name: event.reason for event in events if isinstance(event, StepStarted)}
    assert started["RUN after"] == "parent step #1 was rebuilt"  # seen through the merge

    third = CountingWorker(graph2, files)
    Solver(graph2, third, cache).solve([target2])
    assert third.executed == []
