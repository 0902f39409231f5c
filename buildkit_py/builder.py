"""`build()`: Dockerfile and context in, a stored (and tagged) image out. The library call behind `pybuild build`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import fastpath
from .context.dockerignore import load_ignore_rules
from .context.hashing import ContextHasher
from .digest import Digest
from .errors import BuildError, ContextError, ImageNotFound, InstructionError
from .frontend.dockerfile2ops import dockerfile_to_plan
from .frontend.named_contexts import parse_build_contexts
from .frontend.parser import parse_dockerfile
from .frontend.plan import BuildPlan
from .frontend.platforms import PLATFORM, normalize_platform
from .frontend.syntax import check_syntax
from .image.config import HistoryEntry, ImageConfig, rfc3339
from .image.manifest import Platform, host_platform
from .image.resolved import ResolvedImage
from .image.stored import image_config, put_image_bytes
from .options import SOURCE_DATE_EPOCH, BuildOptions, read_dockerfile
from .reference import parse_reference
from .remotecache.spec import parse_cache_from, parse_cache_to
from .session import BuildSession, SecretSource, SshSource, open_session, parse_secret, parse_ssh
from .solver.graph import BuildGraph
from .solver.ops import ContextSource, GitSource, HttpSource, ImageSource
from .solver.progress import (
    BuildMessage,
    ProgressCallback,
    ProgressEvent,
    StepCached,
    StepStarted,
    ignore_progress,
)
from .solver.solver import BuildCache, Solver, SolveResult, SolveStats
from .store import Store, default_root

if TYPE_CHECKING:
    from .checking import CheckResult
    from .remotecache.export import ExportReport
    from .remotecache.view import CacheView


ENTITLEMENTS = frozenset({"network.host", "security.insecure"})


def build_options(options: BuildOptions | str | Path, **fields: Any) -> BuildOptions:
    """`options`, or a context folder plus option fields by name: `build_options("app", tags=["app:1"])`."""
    if "tags" in fields:
        fields["tags"] = tuple(fields["tags"])
    if "no_cache_stages" in fields:
        fields["no_cache_stages"] = tuple(fields["no_cache_stages"])
    if "allow" in fields:
        fields["allow"] = frozenset(fields["allow"])
    if "build_contexts" in fields and not isinstance(fields["build_contexts"], Mapping):
        fields["build_contexts"] = parse_build_contexts(fields["build_contexts"])
    if "add_hosts" in fields:
        fields["add_hosts"] = tuple(tuple(pair) for pair in fields["add_hosts"])
    if "cache_from" in fields:
        fields["cache_from"] = tuple(
            parse_cache_from(spec) if isinstance(spec, str) else spec for spec in fields["cache_from"]
        )
    if "cache_to" in fields:
        fields["cache_to"] = tuple(
            parse_cache_to(spec) if isinstance(spec, str) else spec for spec in fields["cache_to"]
        )
    if "secrets" in fields:  # SecretSource, or the text of a --secret
        fields["secrets"] = tuple(s if isinstance(s, SecretSource) else parse_secret(s) for s in fields["secrets"])
    if "ssh" in fields:  # SshSource, or the text of an --ssh
        fields["ssh"] = tuple(s if isinstance(s, SshSource) else parse_ssh(s) for s in fields["ssh"])
    if isinstance(options, BuildOptions):
        return replace(options, **fields) if fields else options
    return BuildOptions(context=Path(options), **fields)


@dataclass(frozen=True)
class BuildResult:
    """What a build gave. `cache_exports` says what each --cache-to did; one that failed has its `error` set (the
    image is stored and tagged all the same)."""

    image_id: Digest
    config: ImageConfig
    tags: tuple[str, ...]
    stats: SolveStats
    plan: BuildPlan
    keys: Mapping[Digest, Digest] = field(default_factory=dict)
    cache_exports: tuple[ExportReport, ...] = ()
    imported: Mapping[Digest, str] = field(default_factory=dict)  # op -> the imported cache its hit came from


class StoreImageResolver:
    """Base images for FROM and COPY --from: from the local store, else pulled from their registry."""

    def __init__(self, store: Store, *, pull: bool = False) -> None:
        self.store = store
        self.pull = pull

    def __call__(self, ref: str) -> ResolvedImage:
        try:
            if self.pull:
                raise ImageNotFound(ref)
            image_id = self.store.resolve(ref)
        except ImageNotFound:
            from .registry.resolver import PullingImageResolver  # the registry client is only loaded when needed

            return PullingImageResolver(self.store, always_pull=self.pull)(ref)
        self.store.damage.refuse(image_id)
        config = image_config(self.store, image_id)
        for diff_id in config.diff_ids:
            self.store.damage.refuse(diff_id)  # known damaged by `system check`: say so now, not halfway through
        return ResolvedImage(ref=ref, image_id=image_id, config=config)


def plan_build(store: Store, options: BuildOptions) -> BuildPlan:
    context = options.context.resolve()
    if not context.is_dir():
        raise ContextError(f"unable to prepare context: path {str(context)!r} not found")
    unknown = options.allow - ENTITLEMENTS
    if unknown:
        raise ContextError(f"unknown entitlement {min(unknown)!r}: use network.host or security.insecure")
    check_platform(options.platform)
    data, dockerfile_path, name = read_dockerfile(context, options.dockerfile, options.dockerfile_text)
    parsed = parse_dockerfile(data, name)
    check_syntax(parsed, options.build_args)
    ignore = load_ignore_rules(context, dockerfile_path)
    context_op = ContextSource(name="context", path=str(context), exclude=ignore.patterns)
    return dockerfile_to_plan(
        parsed,
        context=context_op,
        build_args=dict(options.build_args),
        target=options.target,
        resolve_image=StoreImageResolver(store, pull=options.pull),
        network=options.network,
        entitlements=options.allow,
        build_contexts=options.build_contexts,
        labels=options.labels,
        extra_hosts=options.add_hosts,
    )


def check_platform(platform: str | None) -> None:
    """`--platform`: the one platform pybuild builds (linux/amd64), in any case and with Docker's aliases."""
    if platform and normalize_platform(platform) is None:
        raise ContextError(f"pybuild builds {PLATFORM} images only; it cannot build for {platform!r}")


def assemble_image(
    plan: BuildPlan, solved: SolveResult, step_times: Mapping[Digest, float], epoch: int | None = None
) -> ImageConfig:
    """The image config. Each history entry is dated when its step's layer was first built (`step_times`, by op),
    so a rebuild whose steps all hit yields the very same config, and so the same image id, as Docker's does. With
    `epoch` (SOURCE_DATE_EPOCH) every date the build adds is that time instead."""
    chains = solved.chains
    history = list(plan.base.history)
    host = host_platform()
    fallback = plan.base.created or rfc3339(time.time())
    latest = 0.0
    for step in plan.steps:
        if step.op is not None:
            latest = max(latest, step_times.get(step.op, latest))
        if step.op is None or step.parent is None:
            empty = True
        elif step.op in chains and step.parent in chains:
            empty = chains[step.op] == chains[step.parent]
        else:
            empty = False  # a record beneath a cached step was pruned: assume the step made its layer
        comment = step.comment
        if step.location is not None:
            comment = f"{comment}: {step.location.file}:{step.location.start_line}"
        created = rfc3339(epoch) if epoch is not None else rfc3339(latest) if latest else fallback
        history.append(HistoryEntry(created=created, created_by=step.created_by, empty_layer=empty, comment=comment))
    return ImageConfig(
        config=plan.config,
        diff_ids=chains[plan.target],
        history=tuple(history),
        architecture=host.architecture,
        os=host.os,
        variant=host.variant,
        created=rfc3339(epoch) if epoch is not None else rfc3339(latest) if latest else fallback,
        author=plan.author or plan.base.author,
    )


def _report_checks(options: BuildOptions, store: Store, progress: ProgressCallback) -> None:
    """BuildKit's lint warnings, printed before the steps run; with `# check=error=true`, the build stops."""
    from .checking import check_options, format_warning  # lazy: `pybuild graph` plans without the lint rules

    result = check_options(options, store)
    for warning in result.warnings:
        progress(BuildMessage(format_warning(warning)))
    failure = result.failure
    if failure is not None:
        raise InstructionError(failure, result.warnings[0].location)


def _check_volumes(store: Store, plan: BuildPlan, image: ImageConfig) -> None:
    from .image.volumes import volume_over_file  # lazy: only a build reads its layers' snapshots (graph, check don't)

    volume = volume_over_file(store, image.diff_ids, image.config.volumes)
    if volume is None:
        return
    location = next(
        (
            step.location
            for step in reversed(plan.steps)
            if step.created_by.startswith("VOLUME") and volume in step.created_by
        ),
        None,
    )
    raise InstructionError(f"cannot mount volume over existing file, file exists {volume}", location, "VOLUME")


def source_date_epoch(options: BuildOptions) -> int | None:
    """The build arg SOURCE_DATE_EPOCH as a Unix time, or None when it is not given."""
    text = options.build_args.get(SOURCE_DATE_EPOCH)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ContextError(f"invalid {SOURCE_DATE_EPOCH} {text!r}: expected a Unix time in seconds") from None
    if value < 0:
        raise ContextError(f"invalid {SOURCE_DATE_EPOCH} {text!r}: it may not be negative")
    return value


def _project(context: Path, plan: BuildPlan) -> str:
    """Names the build in the step log: guesses about edits look only at its own steps."""
    dockerfile = next((step.location.file for step in plan.steps if step.location is not None), "")
    return f"{context}:{dockerfile}"


@contextmanager
def _open_solver(
    store: Store,
    context: Path,
    plan: BuildPlan,
    *,
    cache: BuildCache | None = None,
    explain: bool = True,
    mtime_limit: int | None = None,
    fetch_layers: Callable[[tuple[Digest, ...]], None] | None = None,
    session: BuildSession | None = None,
    restore_cache_mount: Callable[[str], None] | None = None,
    **options: Any,
) -> Iterator[Solver]:
    """A solver for `plan`'s target with the local worker; its sandbox fork server and step log close on exit.
    `cache` is the store's records unless given; `explain=False` keeps the step log out of it (nothing recorded)."""
    # lazy: `check()` lints without running a step, so it loads no executor, worker or step log (30 modules)
    from .exec.linux import LinuxExecutor
    from .solver.explain import StepLog
    from .worker import LocalWorker

    graph = plan.graph.subgraph_for([plan.target])
    explainer = StepLog(store.steps, project=_project(context, plan))
    executor = LinuxExecutor(store.root / "tmp")
    try:
        worker = LocalWorker(
            store,
            executor,
            graph,
            ContextHasher(context, store),
            cpu_slots=os.cpu_count() or 1,
            mtime_limit=mtime_limit,
            fetch_layers=fetch_layers,
            session=session,
            restore_cache_mount=restore_cache_mount,
        )
        yield Solver(
            graph,
            worker,
            cache if cache is not None else store.cache,
            explainer=explainer if explain else None,
            **options,
        )
    finally:
        explainer.close()
        executor.close()


def _cache_rules(options: BuildOptions, plan: BuildPlan) -> dict[str, Any]:
    """The solver's `no_cache` (which steps may not hit) and `no_cache_reason` (what a miss says about it), from
    --no-cache and --no-cache-filter; the build and --explain use the same."""
    skip_stages = {stage.lower() for stage in options.no_cache_stages}

    def no_cache(digest: Digest) -> bool:
        return options.no_cache or plan.graph.meta(digest).stage.lower() in skip_stages

    def reason(digest: Digest) -> str:
        if options.no_cache:
            return "cache disabled (--no-cache)"
        return f"cache disabled for stage {plan.graph.meta(digest).stage!r} (--no-cache-filter)"

    return {"no_cache": no_cache, "no_cache_reason": reason}


def default_jobs() -> int:
    """Steps in flight when --jobs is not given. A RUN step mostly waits on its process, not on pybuild, so more
    of them than CPUs may run; the CPU-bound parts of steps (copying, hashing, writing layers) are held to one per
    CPU by the worker either way."""
    return max(4, 2 * (os.cpu_count() or 1))


def _open_store(store: Store | None, root: str | Path | None) -> Store:
    return store or Store(Path(root) if root is not None else default_root())


def _solve(
    store: Store,
    options: BuildOptions,
    plan: BuildPlan,
    view: CacheView | None,
    progress: ProgressCallback,
    epoch: int | None,
    session: BuildSession | None = None,
) -> SolveResult:
    """Solve the plan's target and make its layers local. With imported caches (`view`), a layer that turns out
    unusable is broken from then on (the view warns), and the plan is solved again: those steps then run."""
    while True:
        failures = len(view.failures) if view is not None else 0
        try:
            with _open_solver(
                store,
                options.context.resolve(),
                plan,
                cache=view,
                mtime_limit=epoch,
                fetch_layers=view.ensure_local if view is not None else None,
                session=session,
                restore_cache_mount=view.restore_mount if view is not None else None,
                jobs=options.jobs or default_jobs(),
                progress=progress,
                **_cache_rules(options, plan),
            ) as solver:
                solved = solver.solve([plan.target])
            if view is not None:
                view.ensure_local(solved.chains[plan.target])
            return solved
        except BuildError:
            if view is None or len(view.failures) == failures:
                raise
            progress(BuildMessage("solving again without the imported cache records that need the broken layers"))


class _ShownProgress:
    """Passes progress on, and keeps the steps and warnings a no-op rebuild will show again (fastpath.py)."""

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress = progress
        self.steps: list[tuple[int, str, str]] = []
        self.messages: list[str] = []

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, StepStarted | StepCached):
            self.steps.append((event.number, event.name, str(event.op)))
        elif isinstance(event, BuildMessage) and event.text.startswith(("WARNING", "[Warning]")):
            self.messages.append(event.text)
        self._progress(event)


def _say(progress: ProgressCallback) -> Callable[[str], None]:
    return lambda text: progress(BuildMessage(text))


def build(
    options: BuildOptions | str | Path,
    *,
    progress: ProgressCallback = ignore_progress,
    root: str | Path | None = None,
    store: Store | None = None,
    **fields: Any,
) -> BuildResult:
    """Build the Dockerfile in the context; store the image, tag it with each of the tags, export its cache where
    `cache_to` says, return what happened.

    `options` is a BuildOptions, or the context folder with option fields by name (`build("app", tags=["app:1"])`)."""
    options = build_options(options, **fields)
    store = _open_store(store, root)
    found = fastpath.fingerprint(options)  # before anything is read: a change made meanwhile is a later miss
    shown = _ShownProgress(progress)
    progress = shown
    plan = plan_build(store, options)
    _report_checks(options, store, progress)
    unused = plan.unused_build_args - {SOURCE_DATE_EPOCH}
    if unused:
        names = " ".join(sorted(unused))
        progress(BuildMessage(f"[Warning] One or more build-args [{names}] were not consumed"))
    epoch = source_date_epoch(options)
    view = None
    if options.cache_from:  # the cache machinery is imported only by builds that use it: no-op rebuilds stay quick
        from .remotecache.session import open_view  # lazy: only builds with --cache-from load the cache machinery

        project = _project(options.context.resolve(), plan)
        view = open_view(store, options.cache_from, _say(progress), project, options.registry)
    imported: dict[Digest, str] = {}
    try:
        with open_session(options.secrets, options.ssh) as session:
            solved = _solve(store, options, plan, view, progress, epoch, session)
        if view is not None:
            view.adopt()
            imported = {op: origin for op, key in solved.keys.items() if (origin := view.origin(key)) is not None}
    finally:
        if view is not None:
            view.close()
    step_ops = [step.op for step in plan.steps if step.op is not None and step.op in solved.keys]
    created = store.cache.created([solved.keys[op] for op in step_ops])
    step_times = {op: created[solved.keys[op]] for op in step_ops if solved.keys[op] in created}
    image = assemble_image(plan, solved, step_times, epoch)
    _check_volumes(store, plan, image)
    config_bytes = image.to_bytes()
    if any(spec.type == "inline" for spec in options.cache_to):
        # lazy: only builds with --cache-to load the cache machinery
        from .remotecache.metadata import with_inline_cache
        from .remotecache.session import inline_document

        config_bytes = with_inline_cache(config_bytes, inline_document(store, plan, solved))
    image_id = put_image_bytes(store, config_bytes)
    written: list[str] = []
    for tag in options.tags:
        familiar = parse_reference(tag).familiar
        store.tags.set(familiar, image_id)
        written.append(familiar)
    reports: tuple[ExportReport, ...] = ()
    if options.cache_to:
        from .remotecache.session import export_caches  # lazy: only builds with --cache-to load the cache machinery

        platform = Platform(image.os, image.architecture, image.variant)
        reports = export_caches(store, plan, solved, options.cache_to, platform, _say(progress), options.registry, view)
    if found is not None and not any(isinstance(plan.graph.op(op), HttpSource | GitSource) for op in solved.keys):
        bases = sorted(
            {
                (op.ref, str(op.image_id))
                for digest in solved.keys
                if isinstance(op := plan.graph.op(digest), ImageSource)
            }
        )
        fastpath.remember(store, found, fastpath.Remembered(str(image_id), bases, shown.steps, shown.messages))
    return BuildResult(
        image_id=image_id,
        config=image,
        tags=tuple(written),
        stats=solved.stats,
        plan=plan,
        keys=solved.keys,
        cache_exports=reports,
        imported=imported,
    )


class _Forgetful:
    """A build cache that has nothing and keeps nothing: a rebuild that must not change the store's records."""

    def get(self, key: Digest) -> tuple[Digest, ...] | None:
        return None

    def get_many(self, keys: Sequence[Digest]) -> dict[Digest, tuple[Digest, ...]]:
        return {}

    def put(self, key: Digest, chain: tuple[Digest, ...], description: str = "") -> None:
        pass


def rebuild_without_cache(
    options: BuildOptions | str | Path,
    *,
    progress: ProgressCallback = ignore_progress,
    root: str | Path | None = None,
    store: Store | None = None,
    **fields: Any,
) -> ImageConfig:
    """Build again, running every step, and return the image config it gives, without storing the image or any
    cache record or step log entry (the layers it makes are stored, named by nothing: pruning removes them).
    What `build --verify` compares with the image of the build before it."""
    options = build_options(options, **fields)
    store = _open_store(store, root)
    plan = plan_build(store, options)
    epoch = source_date_epoch(options)
    with _open_solver(
        store,
        options.context.resolve(),
        plan,
        cache=_Forgetful(),
        explain=False,
        mtime_limit=epoch,
        jobs=options.jobs or default_jobs(),
        no_cache=lambda digest: True,
        progress=progress,
    ) as solver:
        solved = solver.solve([plan.target])
    now = time.time()
    return assemble_image(plan, solved, {op: now for op in solved.stats.executed}, epoch)


@dataclass(frozen=True)
class GraphStates:
    """A build's graph as it stands, without building: each step's cache state, why a miss would run, its `#N`,
    and how long it took when it last ran (seconds)."""

    graph: BuildGraph
    states: Mapping[Digest, str]
    reasons: Mapping[Digest, str]
    numbers: Mapping[Digest, int]
    lines: tuple[tuple[int, str, str], ...] = ()
    durations: Mapping[Digest, float] = field(default_factory=dict)


def graph_states(
    options: BuildOptions | str | Path,
    *,
    root: str | Path | None = None,
    store: Store | None = None,
    **fields: Any,
) -> GraphStates:
    """Without building: every step's cache state and, for a miss, why it would run; the input of `pybuild graph`."""
    from .solver.dot import HIT, MISS, NOT_NEEDED  # lazy: only `pybuild graph` names cache states

    options = build_options(options, **fields)
    store = _open_store(store, root)
    plan = plan_build(store, options)
    context = options.context.resolve()
    view = None
    if options.cache_from:
        from .remotecache.session import open_view  # lazy: only with --cache-from

        view = open_view(store, options.cache_from, lambda text: None, _project(context, plan), options.registry)
    try:
        with _open_solver(
            store, context, plan, cache=view, mtime_limit=source_date_epoch(options), **_cache_rules(options, plan)
        ) as solver:
            explanation = solver.explain_steps([plan.target])
            durations = solver.last_durations(explanation.keys)
    finally:
        if view is not None:
            view.close()
    by_number = {number: digest for digest, number in solver.numbers.items()}
    lines = tuple(
        (number, name, _with_origin(state, view.origin(explanation.keys[by_number[number]]) if view else None))
        for number, name, state in explanation.lines
    )
    states: dict[Digest, str] = {}
    reasons: dict[Digest, str] = {}
    for number, _name, state in lines:
        digest = by_number[number]
        if state.startswith("cached"):
            states[digest] = HIT
        elif state.startswith("not needed"):
            states[digest] = NOT_NEEDED
        else:
            states[digest] = MISS
            reasons[digest] = state
    return GraphStates(
        graph=solver.graph,
        states=states,
        reasons=reasons,
        numbers=dict(solver.numbers),
        lines=lines,
        durations=durations,
    )


def _with_origin(state: str, origin: str | None) -> str:
    """`cached` for a record of the local store, `cached: from <the imported cache>` for one that would be fetched."""
    return f"{state}: from {origin}" if state == "cached" and origin is not None else state


def explain(
    options: BuildOptions | str | Path,
    *,
    root: str | Path | None = None,
    store: Store | None = None,
    **fields: Any,
) -> list[tuple[int, str, str]]:
    """Without building: for each step, (number, name, "cached", "cached: from <imported cache>", or why it would
    run)."""
    return list(graph_states(options, root=root, store=store, **fields).lines)


def check(
    options: BuildOptions | str | Path,
    *,
    root: str | Path | None = None,
    store: Store | None = None,
    **fields: Any,
) -> CheckResult:
    """Lint the Dockerfile of a build (its build args, .dockerignore and target count), building nothing.

    `options` is a BuildOptions, or the context folder with option fields by name, as for `build()`."""
    from .checking import check_options  # lazy: see _report_checks

    return check_options(build_options(options, **fields), _open_store(store, root))


__all__ = [
    "BuildOptions",
    "BuildResult",
    "GraphStates",
    "ImageNotFound",
    "build",
    "build_options",
    "check",
    "explain",
    "graph_states",
    "plan_build",
    "rebuild_without_cache",
]
