"""The caches of one build: opening the imported ones before it, writing the exported ones after it, with a line of
progress for each (records, layers, sizes, times)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..digest import Digest
from ..errors import BuildError
from ..image.manifest import Platform
from .export import ExportReport, cache_artifact, collect_records, export_cache
from .metadata import CacheDocument
from .sources import CacheSource, open_cache_source
from .spec import CacheExport, CacheImport
from .view import CacheView, human_size

if TYPE_CHECKING:
    from ..frontend.plan import BuildPlan
    from ..registry.client import TransportOptions
    from ..solver.solver import SolveResult
    from ..store import Store

__all__ = ["export_caches", "inline_document", "open_view"]

Say = Callable[[str], None]


def open_view(
    store: Store, imports: Sequence[CacheImport], say: Say, project: str, options: TransportOptions | None = None
) -> CacheView:
    """The build's cache: the local store, then each cache of `imports` that can be read. One that cannot (not
    there yet, corrupt, from a newer pybuild) is a warning, and the build goes on without it."""
    sources: list[CacheSource] = []
    for spec in imports:
        started = time.monotonic()
        say(f"importing cache manifest from {spec}")
        try:
            source = open_cache_source(store, spec, options)
        except BuildError as error:
            say(f"[Warning] cache {spec} cannot be used, building without it: {error}")
            continue
        elapsed = time.monotonic() - started
        say(
            f"importing cache manifest from {spec}: {len(source.document.records)} records, {len(source.layers)} "
            f"layers, {human_size(source.metadata_size)} of metadata, {elapsed:.2f}s"
        )
        sources.append(source)
    return CacheView(store, sources, warn=lambda text: say(f"[Warning] {text}"), say=say, project=project)


def _is_source(plan: BuildPlan, op: Digest) -> bool:
    return not plan.graph.op(op).inputs()


def _records(store: Store, plan: BuildPlan, solved: SolveResult, mode: str) -> CacheDocument:
    if mode == "max":
        ops = [op for op in solved.keys if not _is_source(plan, op)]
    else:
        ops = [step.op for step in plan.steps if step.op is not None and not _is_source(plan, step.op)]
        if not _is_source(plan, plan.target):
            ops.append(plan.target)
    keys = [solved.keys[op] for op in ops if op in solved.keys]
    chains = {solved.keys[op]: solved.chains[op] for op in ops if op in solved.keys and op in solved.chains}
    names = {solved.keys[op]: plan.graph.meta(op).name for op in ops if op in solved.keys}
    return collect_records(store, keys, chains, names)


def _base_layers(store: Store, plan: BuildPlan, solved: SolveResult) -> set[Digest]:
    """The layers of the build's base images, which a build that can use the cache pulls anyway."""
    from ..image.stored import image_config
    from ..solver.ops import ImageSource

    layers: set[Digest] = set()
    for op in solved.keys:
        source = plan.graph.op(op)
        if isinstance(source, ImageSource):
            layers.update(image_config(store, source.image_id).diff_ids)
    return layers


def inline_document(store: Store, plan: BuildPlan, solved: SolveResult) -> CacheDocument:
    """The records of the final image's steps (mode=min): every chain is a prefix of the image's own layers."""
    return _records(store, plan, solved, "min")


def export_caches(
    store: Store,
    plan: BuildPlan,
    solved: SolveResult,
    specs: Sequence[CacheExport],
    platform: Platform,
    say: Say,
    options: TransportOptions | None = None,
) -> tuple[ExportReport, ...]:
    """Write each non-inline cache of `specs`; a failure is reported (and in its report), never raised."""
    reports: list[ExportReport] = []
    base = _base_layers(store, plan, solved)
    for spec in specs:
        if spec.type == "inline":
            continue
        started = time.monotonic()
        say(f"exporting cache to {spec} (mode={spec.mode}, compression={spec.compression})")
        if spec.cache_mounts:
            say(
                "[Warning] cache-mounts=true: this pybuild has no RUN --mount=type=cache yet, so there is none to export"
            )
        try:
            artifact = cache_artifact(store, _records(store, plan, solved, spec.mode), base, spec.compression, platform)
        except BuildError as error:
            report = ExportReport(spec, seconds=time.monotonic() - started, error=str(error))
        else:
            report = export_cache(store, spec, artifact, options)
        reports.append(report)
        if report.error:
            level = "[Warning] " if spec.ignore_error else "ERROR: "
            say(f"{level}exporting cache to {spec} failed: {report.error}")
        elif report.unchanged:
            say(
                f"exporting cache to {spec}: unchanged ({report.records} records, {human_size(report.size)}), {report.seconds:.2f}s"
            )
        else:
            say(
                f"exporting cache to {spec}: {report.records} records, {report.layers} layers, "
                f"{human_size(report.size)} ({human_size(report.sent)} sent), {report.seconds:.2f}s"
            )
    return tuple(reports)
