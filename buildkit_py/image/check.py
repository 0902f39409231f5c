"""`pybuild system check`, as `git fsck`: every blob against its digest, every snapshot against its layer, and which
images that damage reaches.

A blob is checked by hashing it: its name is its sha256. A snapshot (an unpacked layer) is checked against its layer's
tar, once that is known good: the tar is unpacked afresh and the two trees compared (layer/verify.py). A layer kept
as a snapshot plus a recipe is checked by rebuilding its tar from the snapshot, which must hash to the diff_id. What is found
damaged is recorded in the store, so that a later FROM, save or push of an image that needs it fails with the reason
instead of building on bad bytes; what checks out clean clears an earlier record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..digest import Digest
from ..errors import DigestMismatch, LayerError, StoreError
from ..layer.unpack import unpack_layer
from ..layer.verify import compare_trees
from ..store import Store

__all__ = ["CheckReport", "DamagedImage", "Problem", "check_store"]


@dataclass(frozen=True)
class Problem:
    digest: Digest
    what: str  # "layer blob", "layer snapshot", "image config", "blob"
    problem: str

    def __str__(self) -> str:
        return f"{self.what} {self.digest}: {self.problem}"


@dataclass(frozen=True)
class DamagedImage:
    image_id: Digest
    tags: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class CheckReport:
    blobs_checked: int
    snapshots_checked: int
    problems: tuple[Problem, ...]
    damaged_images: tuple[DamagedImage, ...]

    @property
    def clean(self) -> bool:
        return not self.problems


def _kind_of(digest: Digest, layers: set[Digest], configs: set[Digest]) -> str:
    if digest in layers:
        return "layer blob"
    if digest in configs:
        return "image config"
    return "blob"


def _check_snapshot(store: Store, diff_id: Digest) -> str | None:
    snapshot = store.snapshots.path(diff_id)
    with store.temp_dir("check") as work:
        expected = work / "root"
        expected.mkdir()
        with store.layers.open(diff_id, even_if_damaged=True) as stream:
            unpack_layer(stream, expected)
        differences = compare_trees(expected, snapshot)
    return "; ".join(differences) if differences else None


def check_store(store: Store, progress: Callable[[str], None] | None = None) -> CheckReport:
    """Check everything in the store; record what is damaged, clear what checks out."""
    say = progress or (lambda text: None)
    layers = set(store.layers.sizes())
    chains = store.images.chains()
    configs = set(chains)
    problems: list[Problem] = []
    bad: set[Digest] = set()
    blobs_checked = 0
    for digest in sorted(store.blobs.iter_digests(), key=str):
        blobs_checked += 1
        try:
            store.blobs.verify(digest)
        except DigestMismatch as error:
            problems.append(Problem(digest, _kind_of(digest, layers, configs), str(error).split(": ", 1)[-1]))
            bad.add(digest)
    present = set(store.blobs.iter_digests())
    for diff_id in layers:
        if not store.layers.has(diff_id):
            problems.append(Problem(diff_id, "layer", "its blob, or its recipe and snapshot, are missing"))
            bad.add(diff_id)
    for image_id in configs - present:
        problems.append(Problem(image_id, "image config", "the blob is missing"))
        bad.add(image_id)
    snapshots_checked = 0
    for diff_id in sorted(layers - bad, key=str):
        if not store.snapshots.has(diff_id):
            continue
        snapshots_checked += 1
        say(f"checking the snapshot of {diff_id}")
        try:
            difference = _check_snapshot(store, diff_id)
        except DigestMismatch as error:
            difference = str(error).split(": ", 1)[-1] if store.layers.kept_as_recipe(diff_id) else str(error)
        except (LayerError, StoreError, OSError) as error:
            difference = f"cannot be compared with its layer: {error}"
        if difference is not None:
            problems.append(Problem(diff_id, "layer snapshot", difference))
            bad.add(diff_id)
    for problem in problems:
        store.damage.mark(problem.digest, problem.what, problem.problem)
    for damage in store.damage.all():
        if damage.digest not in bad:
            store.damage.clear(damage.digest)
    damaged_images = []
    for image_id, chain in sorted(chains.items(), key=lambda item: str(item[0])):
        reasons = [str(problem) for problem in problems if problem.digest == image_id or problem.digest in chain]
        if reasons:
            damaged_images.append(DamagedImage(image_id, tuple(store.tags.of(image_id)), tuple(reasons)))
    return CheckReport(blobs_checked, snapshots_checked, tuple(problems), tuple(damaged_images))
