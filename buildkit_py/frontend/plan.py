"""What the frontend hands on: a graph of ops, the op whose output is the image's filesystem, and its config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..digest import Digest
from ..errors import SourceLocation
from ..image.config import ContainerConfig, HistoryEntry, ImageConfig
from ..image.resolved import ImageResolver, ResolvedImage
from ..solver.graph import BuildGraph


@dataclass(frozen=True)
class HistoryStep:
    """One history entry the build adds. `op` made a layer on top of `parent` unless both give the same chain."""

    created_by: str
    op: Digest | None = None
    parent: Digest | None = None
    comment: str = "buildkit_py"
    location: SourceLocation | None = None


@dataclass(frozen=True)
class BuildPlan:
    graph: BuildGraph
    target: Digest
    config: ContainerConfig
    base: ImageConfig = field(default_factory=ImageConfig)
    steps: tuple[HistoryStep, ...] = ()
    stage_name: str = ""
    used_build_args: frozenset[str] = frozenset()
    unused_build_args: frozenset[str] = frozenset()
    stage_targets: Mapping[str, Digest] = field(default_factory=dict)
    author: str = ""  # MAINTAINER of the target stage: the image config's `author`


__all__ = ["BuildPlan", "HistoryEntry", "HistoryStep", "ImageResolver", "ResolvedImage"]
