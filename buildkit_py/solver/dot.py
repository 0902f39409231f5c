"""The build graph as Graphviz DOT: one node per op, an edge from each input to its consumer, a cluster per stage,
and each step coloured by its cache state (hit, miss and why, not needed because a later step is cached).

Sources (scratch, a base image, the build context, a download, a git checkout) and merges (`COPY --link` stacking
its layer on the stage) have no step number and are drawn as plain shapes. SVG and PNG
come from the `dot` program when it is installed; DOT text needs nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ..digest import Digest
from ..errors import BuildError
from ..fs.output import write_output
from .graph import BuildGraph
from .ops import ContextSource, GitSource, HttpSource, ImageSource, MergeOp, Op, ScratchSource
from .solver import SolveStats

__all__ = [
    "HIT",
    "MISS",
    "NOT_NEEDED",
    "solved_dot",
    "source_label",
    "stage_of",
    "states_from_stats",
    "step_numbers",
    "to_dot",
    "write_graph",
]

HIT = "hit"
MISS = "miss"
NOT_NEEDED = "not needed"

_FILL = {HIT: "#b8e6a8", MISS: "#ffc27a", NOT_NEEDED: "#e4e4e4"}
_FONT = {HIT: "black", MISS: "black", NOT_NEEDED: "#777777"}
_SHOWN_STATE = {HIT: "cached", NOT_NEEDED: "not needed: a later step is cached"}
_SOURCE_SHAPES = {
    ScratchSource.kind: "plaintext",
    ImageSource.kind: "cylinder",
    ContextSource.kind: "folder",
    HttpSource.kind: "note",
    GitSource.kind: "component",
    MergeOp.kind: "invtriangle",
}
_LABEL_REASON = 60
_LABEL_NAME = 70
_STAGE_PREFIX = re.compile(r"^\[(?:(?P<stage>\S+) )?\d+/\d+\]\s*")
_IMAGE_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
_TEXT_SUFFIXES = {".dot", ".gv"}


def step_numbers(graph: BuildGraph) -> dict[Digest, int]:
    """Number the steps as the solver does: every op that is not a source, in topological order from 1."""
    numbers: dict[Digest, int] = {}
    for digest in graph.topological():
        if graph.op(digest).is_step:
            numbers[digest] = len(numbers) + 1
    return numbers


def states_from_stats(graph: BuildGraph, stats: SolveStats) -> dict[Digest, str]:
    """After a build: executed steps missed, cached steps hit, and the steps beneath a hit were not needed."""
    states: dict[Digest, str] = {}
    for digest in graph.topological():
        if not graph.op(digest).is_step:
            continue
        if digest in stats.executed:
            states[digest] = MISS
        elif digest in stats.cached:
            states[digest] = HIT
        else:
            states[digest] = NOT_NEEDED
    return states


def _quote(value: str | list[str]) -> str:
    """A DOT double-quoted string, every character literal; a list becomes lines (DOT's `\\n`)."""
    lines = [value] if isinstance(value, str) else value
    escaped = [" ".join(line.splitlines()).replace("\\", "\\\\").replace('"', '\\"') for line in lines]
    return '"' + "\\n".join(escaped) + '"'


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _node_id(digest: Digest) -> str:
    return f"op_{digest.hex[:16]}"


def source_label(op: Op, name: str) -> str:
    """How a source (scratch, an image, a build context) is shown."""
    if isinstance(op, ImageSource):
        return f"image {op.ref}"
    if isinstance(op, ContextSource):
        return "build context" if op.name == "context" else f"context {op.name}"
    if isinstance(op, ScratchSource):
        return "scratch"
    if isinstance(op, HttpSource):
        return f"download {op.url}"
    if isinstance(op, GitSource):
        return f"git {op.remote}" + (f"#{op.ref}" if op.ref else "")
    if isinstance(op, MergeOp):
        return "link"
    return name or op.kind


def stage_of(name: str, stage: str) -> str:
    """A step's stage: its own, else the one its name's `[stage N/M]` prefix gives."""
    if stage:
        return stage
    match = _STAGE_PREFIX.match(name)
    return match.group("stage") or "" if match else ""


def _attributes(values: Mapping[str, str | list[str]]) -> str:
    return ", ".join(f"{key}={_quote(value)}" for key, value in values.items())


def to_dot(
    graph: BuildGraph,
    states: Mapping[Digest, str],
    reasons: Mapping[Digest, str],
    numbers: Mapping[Digest, int],
) -> str:
    """The graph as DOT text. `states` maps a step to HIT, MISS or NOT_NEEDED (other steps are drawn uncoloured),
    `reasons` a missed step to why it ran, `numbers` a step to its `#N`."""
    clusters: dict[str, list[str]] = {}
    loose: list[str] = []
    edges: list[str] = []
    stages = {digest: stage_of(graph.meta(digest).name, graph.meta(digest).stage) for digest in graph.topological()}
    for digest in graph.topological():
        op = graph.op(digest)
        meta = graph.meta(digest)
        attributes: dict[str, str | list[str]] = {}
        if not op.is_step:
            label = source_label(op, meta.name)
            attributes["label"] = label
            attributes["shape"] = _SOURCE_SHAPES.get(op.kind, "plaintext")
            attributes["style"] = "filled"
            attributes["fillcolor"] = "#d6e6f7"
            attributes["tooltip"] = [label, str(digest)]
        else:
            state = states.get(digest, "")
            step = f"#{numbers[digest]} " if digest in numbers else ""
            title = _shorten(meta.instruction or op.kind, _LABEL_NAME)
            lines = [f"{step}{title}"]
            tooltip = [f"{step}{meta.name or op.kind}"]
            if state == MISS:
                reason = reasons.get(digest, "")
                lines.append(f"miss: {_shorten(reason, _LABEL_REASON)}" if reason else "miss")
                tooltip.append(f"miss: {reason}" if reason else "miss")
            elif state:
                lines.append(_SHOWN_STATE.get(state, state))
                tooltip.append(_SHOWN_STATE.get(state, state))
            if meta.location is not None:
                tooltip.append(str(meta.location))
            tooltip.append(str(digest))
            attributes["label"] = lines
            attributes["shape"] = "box"
            attributes["style"] = "rounded,filled"
            attributes["fillcolor"] = _FILL.get(state, "white")
            attributes["fontcolor"] = _FONT.get(state, "black")
            attributes["tooltip"] = tooltip
            if state:
                attributes["class"] = state.replace(" ", "-")
        line = f"{_node_id(digest)} [{_attributes(attributes)}];"
        if not op.is_step:
            # A source sits in its stage's box only when that stage alone reads it (a base used twice is shared).
            readers = {stages[consumer] for consumer in graph.consumers_of(digest)}
            if meta.stage and readers <= {stages[digest]}:
                clusters.setdefault(stages[digest], []).append(line)
            else:
                loose.append(line)
        else:
            clusters.setdefault(stages[digest], []).append(line)
        edges.extend(f"{_node_id(source)} -> {_node_id(digest)};" for source in graph.inputs_of(digest))
    out = [
        "digraph build {",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [color="#555555"];',
    ]
    for index, (stage, lines) in enumerate(clusters.items()):
        out.append(f"  subgraph cluster_{index} {{")
        title = stage if stage.startswith("stage-") else f"stage {stage}" if stage else "stage"
        out.append(f"    label={_quote(title)};")
        out.append('    style="rounded,dashed"; color="#999999";')
        out.extend(f"    {line}" for line in lines)
        out.append("  }")
    out.extend(f"  {line}" for line in loose)
    out.extend(f"  {line}" for line in edges)
    out.append("}")
    return "\n".join(out) + "\n"


def solved_dot(graph: BuildGraph, stats: SolveStats) -> str:
    """The DOT text of a graph the solver has just built (`graph` as the solver saw it: the target's subgraph)."""
    return to_dot(graph, states_from_stats(graph, stats), stats.reasons, step_numbers(graph))


def write_graph(path: Path, dot_text: str) -> None:
    """Write DOT text to a .dot/.gv file, or render it with `dot` for .svg, .png or .pdf."""
    suffix = path.suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        write_output(path, dot_text, "graph")
        return
    image_format = _IMAGE_FORMATS.get(suffix)
    if image_format is None:
        raise BuildError(f"cannot write a graph to {path}: use a .dot, .gv, .svg, .png or .pdf file")
    program = shutil.which("dot")
    if program is None:
        raise BuildError(
            f"cannot write {path}: the Graphviz program `dot` is not installed; write a .dot file instead "
            "(or install graphviz)"
        )
    completed = subprocess.run(
        [program, f"-T{image_format}"], input=dot_text.encode(), capture_output=True, check=False
    )
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip()
        raise BuildError(f"dot failed to write {path}: {message or f'exit status {completed.returncode}'}")
    write_output(path, completed.stdout, "graph")
