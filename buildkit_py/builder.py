"""`build()`: Dockerfile and context in, a stored (and tagged) image out. The library call behind `pybuild build`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .context.dockerignore import load_ignore_rules
from .context.hashing import ContextHasher
from .digest import Digest
from .errors import ContextError, ImageNotFound
from .frontend.plan import BuildPlan
from .image.config import HistoryEntry, ImageConfig, rfc3339
from .image.manifest import host_platform
from .image.resolved import ResolvedImage
from .image.stored import image_config, put_image
from .session import BuildSession, SecretSource, SshSource, open_session, parse_secret, parse_ssh
from .solver.graph import BuildGraph
from .solver.ops import ContextSource
from .solver.progress import BuildMessage, ProgressCallback, ignore_progress
from .solver.solver import Solver, SolveResult, SolveStats
from .store import Store, default_root


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how: everything `pybuild build` takes from its flags.

    `allow` grants entitlements a Dockerfile asks for: `network.host` (`RUN --network=host`) and
    `security.insecure` (`RUN --security=insecure`). `secrets` and `ssh` are what `RUN --mount=type=secret` and
    `type=ssh` reach (`--secret`, `--ssh`); they name files, variables and sockets, never hold a secret's value."""

    context: Path
    dockerfile: str | Path | None = None
    dockerfile_text: bytes | None = None
    tags: tuple[str, ...] = ()
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    no_cache: bool = False
    no_cache_stages: tuple[str, ...] = ()
    network: str = "default"
    allow: frozenset[str] = frozenset()
    jobs: int | None = None
    secrets: tuple[SecretSource, ...] = ()
    ssh: tuple[SshSource, ...] = ()


ENTITLEMENTS = frozenset({"network.host", "security.insecure"})


def build_options(options: BuildOptions | str | Path, **fields: Any) -> BuildOptions:
    """`options`, or a context folder plus option fields by name: `build_options("app", tags=["app:1"])`."""
    if "tags" in fields:
        fields["tags"] = tuple(fields["tags"])
    if "no_cache_stages" in fields:
        fields["no_cache_stages"] = tuple(fields["no_cache_stages"])
    if "allow" in fields:
        fields["allow"] = frozenset(fields["allow"])
    if "secrets" in fields:  # SecretSource, or the text of a --secret
        fields["secrets"] = tuple(s if isinstance(s, SecretSource) else parse_secret(s) for s in fields["secrets"])
    if "ssh" in fields:  # SshSource, or the text of an --ssh
        fields["ssh"] = tuple(s if isinstance(s, SshSource) else parse_ssh(s) for s in fields["ssh"])
    if isinstance(options, BuildOptions):
        return replace(options, **fields) if fields else options
    return BuildOptions(context=Path(options), **fields)


@dataclass(frozen=True)
class BuildResult:
    image_id: Digest
    config: ImageConfig
    tags: tuple[str, ...]
    stats: SolveStats
    plan: BuildPlan
    keys: Mapping[Digest, Digest] = field(default_factory=dict)


def read_dockerfile(
    context: Path, dockerfile: str | Path | None, dockerfile_text: bytes | None
) -> tuple[bytes, Path | None, str]:
    """The Dockerfile's bytes, its path (None when read from stdin) and the name errors show."""
    if dockerfile_text is not None:
        return dockerfile_text, None, "Dockerfile"
    path = Path(dockerfile) if dockerfile is not None else context / "Dockerfile"
    if not path.is_absolute() and dockerfile is not None and not path.exists():
        path = context / path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ContextError(f"failed to read Dockerfile: open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise ContextError(f"failed to read Dockerfile: {path} is a directory") from None
    name = (
        os.path.relpath(path, context)
        if path.is_relative_to(context.resolve()) or not path.is_absolute()
        else str(path)
    )
    return data, path, name if not name.startswith("..") else str(path)


class StoreImageResolver:
    """Base images for FROM and COPY --from: from the local store, else pulled from their registry."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, ref: str) -> ResolvedImage:
        try:
            image_id = self.store.resolve(ref)
        except ImageNotFound:
            from .registry.resolver import PullingImageResolver  # the registry client is only loaded when needed

            return PullingImageResolver(self.store)(ref)
        self.store.damage.refuse(image_id)
        config = image_config(self.store, image_id)
        for diff_id in config.diff_ids:
            self.store.damage.refuse(diff_id)  # known damaged by `system check`: say so now, not halfway through
        return ResolvedImage(ref=ref, image_id=image_id, config=config)


def plan_build(store: Store, options: BuildOptions) -> BuildPlan:
    from .frontend.dockerfile2ops import dockerfile_to_plan
    from .frontend.parser import parse_dockerfile

    context = options.context.resolve()
    if not context.is_dir():
        raise ContextError(f"unable to prepare context: path {str(context)!r} not found")
    unknown = options.allow - ENTITLEMENTS
    if unknown:
        raise ContextError(f"unknown entitlement {min(unknown)!r}: use network.host or security.insecure")
    data, dockerfile_path, name = read_dockerfile(context, options.dockerfile, options.dockerfile_text)
    parsed = parse_dockerfile(data, name)
    ignore = load_ignore_rules(context, dockerfile_path)
    context_op = ContextSource(name="context", path=str(context), exclude=ignore.patterns)
    return dockerfile_to_plan(
        parsed,
        context=context_op,
        build_args=dict(options.build_args),
        target=options.target,
        resolve_image=StoreImageResolver(store),
        network=options.network,
        entitlements=options.allow,
    )


def assemble_image(plan: BuildPlan, solved: SolveResult, step_times: Mapping[Digest, float]) -> ImageConfig:
    """The image config. Each history entry is dated when its step's layer was first built (`step_times`, by op),
    so a rebuild whose steps all hit yields the very same config, and so the same image id, as Docker's does."""
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
        created = rfc3339(latest) if latest else fallback
        history.append(HistoryEntry(created=created, created_by=step.created_by, empty_layer=empty, comment=comment))
    return ImageConfig(
        config=plan.config,
        diff_ids=chains[plan.target],
        history=tuple(history),
        architecture=host.architecture,
        os=host.os,
        variant=host.variant,
        created=rfc3339(latest) if latest else fallback,
        author=plan.author or plan.base.author,
    )


@contextmanager
def _open_solver(
    store: Store, context: Path, plan: BuildPlan, session: BuildSession | None = None, **options: Any
) -> Iterator[Solver]:
    """A solver for `plan`'s target with the local worker; its sandbox fork server and step log close on exit."""
    from .exec.linux import LinuxExecutor
    from .solver.explain import StepLog
    from .solver.solver import Solver
    from .worker import LocalWorker

    graph = plan.graph.subgraph_for([plan.target])
    dockerfile = next((step.location.file for step in plan.steps if step.location is not None), "")
    explainer = StepLog(store.steps, project=f"{context}:{dockerfile}")
    executor = LinuxExecutor(store.root / "tmp")
    try:
        hasher = ContextHasher(context, store)
        worker = LocalWorker(store, executor, graph, hasher, cpu_slots=os.cpu_count() or 1, session=session)
        yield Solver(graph, worker, store.cache, explainer=explainer, **options)
    finally:
        explainer.close()
        executor.close()


def default_jobs() -> int:
    """Steps in flight when --jobs is not given. A RUN step mostly waits on its process, not on pybuild, so more
    of them than CPUs may run; the CPU-bound parts of steps (copying, hashing, writing layers) are held to one per
    CPU by the worker either way."""
    return max(4, 2 * (os.cpu_count() or 1))


def _open_store(store: Store | None, root: str | Path | None) -> Store:
    return store or Store(Path(root) if root is not None else default_root())


def build(
    options: BuildOptions | str | Path,
    *,
    progress: ProgressCallback = ignore_progress,
    root: str | Path | None = None,
    store: Store | None = None,
    **fields: Any,
) -> BuildResult:
    """Build the Dockerfile in the context; store the image, tag it with each of the tags, return what happened.

    `options` is a BuildOptions, or the context folder with option fields by name (`build("app", tags=["app:1"])`)."""
    from .reference import parse_reference

    options = build_options(options, **fields)
    store = _open_store(store, root)
    plan = plan_build(store, options)
    if plan.unused_build_args:
        names = " ".join(sorted(plan.unused_build_args))
        progress(BuildMessage(f"[Warning] One or more build-args [{names}] were not consumed"))
    skip_stages = {stage.lower() for stage in options.no_cache_stages}
    no_cache = options.no_cache
    with (
        open_session(options.secrets, options.ssh) as session,
        _open_solver(
            store,
            options.context.resolve(),
            plan,
            session,
            jobs=options.jobs or default_jobs(),
            no_cache=lambda digest: no_cache or plan.graph.meta(digest).stage.lower() in skip_stages,
            progress=progress,
        ) as solver,
    ):
        solved = solver.solve([plan.target])
    step_ops = [step.op for step in plan.steps if step.op is not None and step.op in solved.keys]
    created = store.cache.created([solved.keys[op] for op in step_ops])
    step_times = {op: created[solved.keys[op]] for op in step_ops if solved.keys[op] in created}
    image = assemble_image(plan, solved, step_times)
    image_id = put_image(store, image)
    written: list[str] = []
    for tag in options.tags:
        familiar = parse_reference(tag).familiar
        store.tags.set(familiar, image_id)
        written.append(familiar)
    return BuildResult(
        image_id=image_id, config=image, tags=tuple(written), stats=solved.stats, plan=plan, keys=solved.keys
    )


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
    from .solver.dot import HIT, MISS, NOT_NEEDED

    options = build_options(options, **fields)
    store = _open_store(store, root)
    plan = plan_build(store, options)
    with _open_solver(store, options.context.resolve(), plan) as solver:
        explanation = solver.explain_steps([plan.target])
        durations = solver.last_durations(explanation.keys)
        lines = explanation.lines
    by_number = {number: digest for digest, number in solver.numbers.items()}
    states: dict[Digest, str] = {}
    reasons: dict[Digest, str] = {}
    for number, _name, state in lines:
        digest = by_number[number]
        if state == "cached":
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


def explain(
    options: BuildOptions | str | Path,
    *,
    root: str | Path | None = None,
    store: Store | None = None,
    **fields: Any,
) -> list[tuple[int, str, str]]:
    """Without building: for each step, (number, name, "cached" or why it would run)."""
    return list(graph_states(options, root=root, store=store, **fields).lines)


__all__ = [
    "BuildOptions",
    "BuildResult",
    "GraphStates",
    "ImageNotFound",
    "build",
    "build_options",
    "explain",
    "graph_states",
    "plan_build",
]
