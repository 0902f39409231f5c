"""The caches of one build: opening the imported ones before it, writing the exported ones after it, with a line of
progress for each (records, layers, sizes, times)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..digest import Digest
from ..errors import BuildError, CarriedLayerError
from ..image.manifest import Platform
from ..image.stored import image_config
from ..solver.ops import ImageSource
from .export import CarriedLayers, ExportBlob, ExportReport, cache_artifact, collect_records, export_cache
from .metadata import CachedMount, CacheDocument
from .mounts import PackedMount, mount_ids, pack_mounts
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
        mounts = f", {_count(len(source.document.mounts), 'cache mount')}" if source.document.mounts else ""
        say(
            f"importing cache manifest from {spec}: {len(source.document.records)} records, {len(source.layers)} "
            f"layers{mounts}, {human_size(source.metadata_size)} of metadata, {elapsed:.2f}s"
        )
        if source.document.skipped_mounts:
            say(f"[Warning] cache {spec}: {source.document.skipped_mounts}")
        sources.append(source)
    return CacheView(store, sources, warn=lambda text: say(f"[Warning] {text}"), say=say, project=project)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _is_source(plan: BuildPlan, op: Digest) -> bool:
    return not plan.graph.op(op).inputs()


def _records(
    store: Store, plan: BuildPlan, solved: SolveResult, mode: str, carried: CarriedLayers | None = None
) -> CacheDocument:
    if mode == "max":
        ops = [op for op in solved.keys if not _is_source(plan, op)]
    else:
        ops = [step.op for step in plan.steps if step.op is not None and not _is_source(plan, step.op)]
        if not _is_source(plan, plan.target):
            ops.append(plan.target)
    keys = [solved.keys[op] for op in ops if op in solved.keys]
    chains = {solved.keys[op]: solved.chains[op] for op in ops if op in solved.keys and op in solved.chains}
    names = {solved.keys[op]: plan.graph.meta(op).name for op in ops if op in solved.keys}
    return collect_records(store, keys, chains, names, carried)


def _base_layers(store: Store, plan: BuildPlan, solved: SolveResult) -> set[Digest]:
    """The layers of the build's base images, which a build that can use the cache pulls anyway."""
    layers: set[Digest] = set()
    for op in solved.keys:
        source = plan.graph.op(op)
        if isinstance(source, ImageSource):
            layers.update(image_config(store, source.image_id).diff_ids)
    return layers


def inline_document(store: Store, plan: BuildPlan, solved: SolveResult) -> CacheDocument:
    """The records of the final image's steps (mode=min): every chain is a prefix of the image's own layers."""
    return _records(store, plan, solved, "min")


def _mount_blobs(
    packed: Mapping[str, PackedMount], ids: Sequence[str], compression: str, view: CacheView | None
) -> list[tuple[CachedMount, ExportBlob]]:
    """Each id's layer: packed here, else carried forward from an imported cache that holds it."""
    blobs: list[tuple[CachedMount, ExportBlob]] = []
    for cache_id in ids:
        if cache_id in packed:
            blobs.append((packed[cache_id].mount, packed[cache_id].blobs[compression]))
            continue
        found = view.imported_mount(cache_id) if view is not None else None
        if found is not None:
            source, mount = found
            blobs.append((mount, ExportBlob(mount.layer, source.layers[mount.layer], source=source)))
    return blobs


def _export_one(
    store: Store,
    plan: BuildPlan,
    solved: SolveResult,
    spec: CacheExport,
    platform: Platform,
    options: TransportOptions | None,
    view: CacheView | None,
    base: set[Digest],
    packed: Mapping[str, PackedMount],
    ids: Sequence[str],
) -> ExportReport:
    """One export. A layer to carry forward that its imported cache cannot give (a warning) drops the records and
    cache mount that need it, and the export starts again without them."""
    while True:
        try:
            document = _records(store, plan, solved, spec.mode, view)
            mounts = _mount_blobs(packed, ids, spec.compression, view) if spec.cache_mounts else []
            document = replace(document, mounts=tuple(mount for mount, _ in mounts))
            blobs = [blob for _, blob in mounts]
            artifact = cache_artifact(store, document, base, spec.compression, platform, view, blobs)
            return export_cache(store, spec, artifact, options)
        except CarriedLayerError as error:
            if view is None or error.diff_id in view.broken:
                return ExportReport(spec, error=str(error))
            view.mark_broken(error.diff_id, f"{error}; the records that need it are not exported")
        except (BuildError, OSError) as error:
            text = str(error) if isinstance(error, BuildError) else f"{error.strerror or error}"
            return ExportReport(spec, error=text)


def export_caches(
    store: Store,
    plan: BuildPlan,
    solved: SolveResult,
    specs: Sequence[CacheExport],
    platform: Platform,
    say: Say,
    options: TransportOptions | None = None,
    view: CacheView | None = None,
) -> tuple[ExportReport, ...]:
    """Write each non-inline cache of `specs`; a failure is reported (and in its report), never raised. With the
    build's `view` of its imported caches, records and cache mounts this store has only there are carried forward;
    the view's sources are closed again at the end."""
    try:
        with store.temp_dir("cache-export") as work:
            return _export_caches(store, plan, solved, specs, platform, say, options, view, work)
    finally:
        if view is not None:
            view.close()


def _export_caches(
    store: Store,
    plan: BuildPlan,
    solved: SolveResult,
    specs: Sequence[CacheExport],
    platform: Platform,
    say: Say,
    options: TransportOptions | None,
    view: CacheView | None,
    work: Path,
) -> tuple[ExportReport, ...]:
    reports: list[ExportReport] = []
    base = _base_layers(store, plan, solved)
    with_mounts = [spec for spec in specs if spec.cache_mounts and spec.type != "inline"]
    ids = mount_ids(plan, solved) if with_mounts else []
    compressions = [spec.compression for spec in with_mounts]
    packed = pack_mounts(store, ids, compressions, work, say) if ids else {}
    for spec in specs:
        if spec.type == "inline":
            continue
        started = time.monotonic()
        say(f"exporting cache to {spec} (mode={spec.mode}, compression={spec.compression})")
        report = _export_one(store, plan, solved, spec, platform, options, view, base, packed, ids)
        report = replace(report, seconds=time.monotonic() - started)
        reports.append(report)
        if report.error:
            level = "[Warning] " if spec.ignore_error else "ERROR: "
            say(f"{level}exporting cache to {spec} failed: {report.error}")
        elif report.unchanged:
            say(
                f"exporting cache to {spec}: unchanged ({report.records} records, {human_size(report.size)}), {report.seconds:.2f}s"
            )
        else:
            extra = f", {report.carried} carried forward" if report.carried else ""
            extra += f", {_count(report.mounts, 'cache mount')}" if report.mounts else ""
            say(
                f"exporting cache to {spec}: {report.records} records, {report.layers} layers{extra}, "
                f"{human_size(report.size)} ({human_size(report.sent)} sent), {report.seconds:.2f}s"
            )
    return tuple(reports)
