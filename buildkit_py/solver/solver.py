"""The solver: cache keys for every op, hits taken from the cache, misses run in parallel in dependency order.

It knows ops, keys and a cache, nothing about Dockerfiles or namespaces: a `Worker` runs ops, a `BuildCache`
remembers what a key produced, an `Explainer` says why a key missed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from ..digest import Digest
from ..errors import BuildError, at_location
from .cachekey import cache_key, keyed_definition
from .graph import BuildGraph
from .ops import MergeOp, Op, OpMeta
from .progress import (
    ProgressCallback,
    StepCached,
    StepDone,
    StepFailed,
    StepSink,
    StepStarted,
    ignore_progress,
)

Chain = tuple[Digest, ...]
SETTINGS_FIELD = "build_settings"  # where a step record's definition keeps its summary's settings


@dataclass(frozen=True)
class ContentSummary:
    """What an op reads from outside the graph: one digest per input it hashes, and per-file digests to explain.
    `settings` names build settings that are part of the key without being part of the op (SOURCE_DATE_EPOCH), so
    the explainer can say when a miss is theirs."""

    digests: tuple[Digest | None, ...] = ()
    files: tuple[Mapping[str, str], ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)


class Worker(Protocol):
    def source_chain(self, op: Op) -> Chain | None:
        """The layers of a source op (scratch, image, context), or None when `op` must be run."""
        ...

    def content(self, op: Op) -> ContentSummary: ...

    def execute(self, op: Op, meta: OpMeta, inputs: Mapping[Digest, Chain], output: StepSink) -> Chain:
        """Run `op`; `output` takes the step's output bytes (call it) and its copy counts (`transferred`)."""
        ...

    def cancel(self) -> None: ...


class BuildCache(Protocol):
    def get(self, key: Digest) -> Chain | None: ...

    def get_many(self, keys: Sequence[Digest]) -> dict[Digest, Chain]:
        """`get` of each key, for those that have a chain."""
        ...

    def put(self, key: Digest, chain: Chain, description: str = "") -> None: ...


@dataclass(frozen=True)
class StepRecord:
    """What the explainer keeps of a step that ran, to say later why a similar step missed."""

    key: Digest
    input_keys: tuple[Digest, ...]
    kind: str
    name: str
    stage: str
    definition: dict[str, object]
    files: tuple[Mapping[str, str], ...] = ()
    number: int = 0
    duration: float = 0.0  # seconds the step took to run


class Explainer(Protocol):
    def record(self, step: StepRecord) -> None: ...

    def explain(self, step: StepRecord) -> str: ...

    def last_duration(self, key: Digest, name: str, stage: str) -> float | None:
        """How long the step last took to run: this very step (`key`), else the latest run of its instruction in
        its stage; None when it never ran."""
        ...


@dataclass
class SolveStats:
    cached: set[Digest] = field(default_factory=set)
    executed: set[Digest] = field(default_factory=set)
    reasons: dict[Digest, str] = field(default_factory=dict)
    durations: dict[Digest, float] = field(default_factory=dict)  # seconds, of the executed steps


@dataclass(frozen=True)
class Explanation:
    """What `explain_steps` finds without running anything: (number, name, "cached" or the reason it would run)
    for every step, and the cache key of every op."""

    lines: tuple[tuple[int, str, str], ...]
    keys: Mapping[Digest, Digest]


@dataclass(frozen=True)
class SolveResult:
    chains: Mapping[Digest, Chain]
    keys: Mapping[Digest, Digest]
    stats: SolveStats


class Solver:
    def __init__(
        self,
        graph: BuildGraph,
        worker: Worker,
        cache: BuildCache,
        *,
        explainer: Explainer | None = None,
        jobs: int = 2,
        no_cache: Callable[[Digest], bool] = lambda digest: False,
        progress: ProgressCallback = ignore_progress,
        no_cache_reason: Callable[[Digest], str] = lambda digest: "cache disabled (--no-cache)",
    ) -> None:
        self.graph = graph
        self.worker = worker
        self.cache = cache
        self.explainer = explainer
        self.jobs = max(1, jobs)
        self.no_cache = no_cache
        self.no_cache_reason = no_cache_reason
        self.forced = self._forced_misses()
        self.progress = progress
        self.numbers = self._number_steps()
        self._lock = threading.Lock()

    def _forced_misses(self) -> set[Digest]:
        """Ops the cache may not answer for: those `no_cache` names, and everything built on them, since a step
        that runs again may give a different result."""
        forced: set[Digest] = set()
        for digest in self.graph.topological():
            op = self.graph.op(digest)
            if self.worker.source_chain(op) is not None:
                continue  # a source is shared by every stage that names it, and is never cached anyway
            if self.no_cache(digest) or any(i in forced for i in op.inputs()):
                forced.add(digest)
        return forced

    def _number_steps(self) -> dict[Digest, int]:
        numbers: dict[Digest, int] = {}
        for digest in self.graph.topological():
            op = self.graph.op(digest)
            if op.is_step and self.worker.source_chain(op) is None:
                numbers[digest] = len(numbers) + 1
        return numbers

    def compute_keys(self, targets: Iterable[Digest]) -> tuple[dict[Digest, Digest], dict[Digest, ContentSummary]]:
        """Keys for every op the targets need. Content hashing, the only costly part, runs in parallel."""
        needed = self.graph.subgraph_for(list(targets))
        order = list(needed.topological())
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            summaries = dict(zip(order, pool.map(self._content, order)))
        keys: dict[Digest, Digest] = {}
        for digest in order:
            op = self.graph.op(digest)
            keys[digest] = cache_key(op, keys, summaries[digest].digests)
        return keys, summaries

    def _located(self, digest: Digest, error: BuildError) -> BuildError:
        meta = self.graph.meta(digest)
        return at_location(error, meta.location, meta.instruction)

    def _content(self, digest: Digest) -> ContentSummary:
        try:
            return self.worker.content(self.graph.op(digest))
        except BuildError as error:
            raise self._located(digest, error) from error.__cause__

    def solve(self, targets: list[Digest]) -> SolveResult:
        keys, summaries = self.compute_keys(targets)
        stats = SolveStats()
        chains: dict[Digest, Chain] = {}
        to_run: list[Digest] = []
        self._plan(targets, keys, chains, to_run, stats)
        for digest in to_run:
            if digest in self.numbers:
                stats.reasons[digest] = self._reason(digest, keys, summaries, stats)
        self._run(to_run, keys, summaries, chains, stats)
        self._fill_skipped(keys, chains)
        return SolveResult(chains=chains, keys=keys, stats=stats)

    def _fill_skipped(self, keys: Mapping[Digest, Digest], chains: dict[Digest, Chain]) -> None:
        """Steps beneath a hit were never visited; their layers are still wanted (image history), from the cache."""
        skipped = [digest for digest in keys if digest not in chains]
        cached = self.cache.get_many([keys[digest] for digest in skipped])
        for digest in skipped:
            if keys[digest] in cached:
                chains[digest] = cached[keys[digest]]

    def explain(self, targets: list[Digest]) -> list[tuple[int, str, str]]:
        """Without running anything: (number, name, "cached" or the reason it would run) for every step."""
        return list(self.explain_steps(targets).lines)

    def explain_steps(self, targets: list[Digest]) -> Explanation:
        keys, summaries = self.compute_keys(targets)
        stats = SolveStats()
        chains: dict[Digest, Chain] = {}
        to_run: list[Digest] = []
        self._plan(targets, keys, chains, to_run, stats)
        lines = []
        for digest, number in sorted(self.numbers.items(), key=lambda item: item[1]):
            name = self.graph.meta(digest).name
            if digest in stats.cached:
                state = "cached"
            elif digest in to_run:
                stats.reasons[digest] = self._reason(digest, keys, summaries, stats)
                state = stats.reasons[digest]
            else:
                state = "not needed: a later step is cached"
            lines.append((number, name, state))
        return Explanation(lines=tuple(lines), keys=keys)

    def last_durations(self, keys: Mapping[Digest, Digest]) -> dict[Digest, float]:
        """Each step's last recorded run time in seconds, for the steps of `keys` that ever ran."""
        durations: dict[Digest, float] = {}
        if self.explainer is None:
            return durations
        for digest in self.numbers:
            if digest in keys:
                meta = self.graph.meta(digest)
                duration = self.explainer.last_duration(keys[digest], meta.name, meta.stage)
                if duration is not None:
                    durations[digest] = duration
        return durations

    def _plan(
        self,
        targets: list[Digest],
        keys: Mapping[Digest, Digest],
        chains: dict[Digest, Chain],
        to_run: list[Digest],
        stats: SolveStats,
    ) -> None:
        """Walk down from the targets; a hit stops the walk, so nothing beneath a cached step is touched."""
        visited: set[Digest] = set()

        def visit(digest: Digest) -> None:
            if digest in visited:
                return
            visited.add(digest)
            op = self.graph.op(digest)
            source = self.worker.source_chain(op)
            if source is not None:
                chains[digest] = source
                return
            if digest not in self.forced:
                cached = self.cache.get(keys[digest])
                if cached is not None:
                    chains[digest] = cached
                    if digest in self.numbers:
                        stats.cached.add(digest)
                    return
            for input_digest in op.inputs():
                visit(input_digest)
            to_run.append(digest)

        for target in targets:
            visit(target)

    def _record(
        self,
        digest: Digest,
        keys: Mapping[Digest, Digest],
        summaries: Mapping[Digest, ContentSummary],
        duration: float = 0.0,
    ) -> StepRecord:
        op = self.graph.op(digest)
        meta = self.graph.meta(digest)
        definition = keyed_definition(op, keys)
        settings = summaries[digest].settings
        if settings:
            definition = {**definition, SETTINGS_FIELD: dict(settings)}
        return StepRecord(
            key=keys[digest],
            input_keys=tuple(keys[d] for d in op.inputs()),
            kind=op.kind,
            name=meta.name,
            stage=meta.stage,
            definition=definition,
            files=summaries[digest].files,
            number=self.numbers.get(digest, 0),
            duration=duration,
        )

    def _reason(
        self,
        digest: Digest,
        keys: Mapping[Digest, Digest],
        summaries: Mapping[Digest, ContentSummary],
        stats: SolveStats,
    ) -> str:
        if self.no_cache(digest):
            return self.no_cache_reason(digest)
        rebuilt = self._rebuilt_parent(digest, stats)
        if rebuilt is not None:
            return f"parent step #{self.numbers[rebuilt]} was rebuilt"
        if self.explainer is None:
            return "not in the cache"
        return self.explainer.explain(self._record(digest, keys, summaries))

    def _rebuilt_parent(self, digest: Digest, stats: SolveStats) -> Digest | None:
        """The first input step that runs in this build, looking through merges (which are not steps)."""
        for input_digest in self.graph.op(digest).inputs():
            if input_digest in stats.reasons and input_digest in self.numbers:
                return input_digest
            if isinstance(self.graph.op(input_digest), MergeOp):
                found = self._rebuilt_parent(input_digest, stats)
                if found is not None:
                    return found
        return None

    def _merge(self, digest: Digest, keys: Mapping[Digest, Digest], chains: dict[Digest, Chain]) -> None:
        """A merge's chain: its inputs' chains one after the other. Recorded like a step's, so that a later hit
        beneath it still finds it."""
        op = self.graph.op(digest)
        chain: Chain = tuple(layer for input_digest in op.inputs() for layer in chains[input_digest])
        with self._lock:
            chains[digest] = chain
        self.cache.put(keys[digest], chain, self.graph.meta(digest).name)

    def _run(
        self,
        to_run: list[Digest],
        keys: Mapping[Digest, Digest],
        summaries: Mapping[Digest, ContentSummary],
        chains: dict[Digest, Chain],
        stats: SolveStats,
    ) -> None:
        # Steps beneath a hit were not even looked up, but they are as good as cached: say so, like BuildKit.
        for digest in sorted(set(self.numbers) - set(to_run), key=lambda d: self.numbers[d]):
            meta = self.graph.meta(digest)
            self.progress(StepCached(self.numbers[digest], meta.name, digest))
        pending = list(to_run)
        running: dict[Future[Chain], Digest] = {}
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                while pending or running:
                    if failure is None:
                        merged = True
                        while merged:  # a merge is ready as soon as its inputs are, and may make another ready
                            ready = [d for d in pending if all(i in chains for i in self.graph.op(d).inputs())]
                            merges = [d for d in ready if isinstance(self.graph.op(d), MergeOp)]
                            for digest in merges:
                                pending.remove(digest)
                                self._merge(digest, keys, chains)
                            merged = bool(merges)
                        for digest in [d for d in ready if d not in merges]:
                            pending.remove(digest)
                            running[pool.submit(self._execute, digest, chains, stats)] = digest
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        digest = running.pop(future)
                        error = future.exception()
                        if error is not None:
                            failure = failure or error  # the first failure; the steps it cancels fail after it
                            self.worker.cancel()
                            continue
                        with self._lock:
                            chains[digest] = future.result()
                        self.cache.put(keys[digest], chains[digest], self.graph.meta(digest).name)
                        if self.explainer is not None:
                            duration = stats.durations.get(digest, 0.0)
                            self.explainer.record(self._record(digest, keys, summaries, duration))
            except BaseException:
                self.worker.cancel()
                raise
        if failure is not None:
            raise failure

    def _execute(self, digest: Digest, chains: Mapping[Digest, Chain], stats: SolveStats) -> Chain:
        op = self.graph.op(digest)
        meta = self.graph.meta(digest)
        number = self.numbers[digest]
        self.progress(StepStarted(number, meta.name, digest, stats.reasons.get(digest, "")))
        started = time.monotonic()
        inputs = {d: chains[d] for d in op.inputs()}
        try:
            chain = self.worker.execute(op, meta, inputs, StepSink(number, self.progress))
        except BuildError as error:
            located = self._located(digest, error)
            self.progress(StepFailed(number, meta.name, digest, str(located)))
            if located is error:
                raise
            raise located from error
        except BaseException as error:
            self.progress(StepFailed(number, meta.name, digest, str(error)))
            raise
        elapsed = time.monotonic() - started
        with self._lock:
            stats.executed.add(digest)
            stats.durations[digest] = elapsed
        self.progress(StepDone(number, meta.name, digest, elapsed))
        return chain
