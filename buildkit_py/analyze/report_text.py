"""`pybuild analyze` for a terminal: summary, layers with their Dockerfile lines, findings, the largest things."""

from __future__ import annotations

from collections.abc import Sequence

from ..units import human_size
from .analysis import ImageAnalysis
from .dive_ci import RuleResult, summary

SHOWN = 10


def _table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.2f} %"


def _excluded(analysis: ImageAnalysis) -> list[str]:
    count = analysis.excluded_base_layers
    if not count:
        return []
    layers = "layer 0" if count == 1 else f"layers 0-{count - 1}"
    return [f"  (the base image's {layers} left out of these figures: --exclude-base)"]


def _committed(analysis: ImageAnalysis) -> list[str]:
    """The layers a commit or import made, each with its author and message (a build layer's are its LINE and STEP)."""
    layers = [layer for layer in analysis.image.layers if layer.author or layer.message]
    if not layers:
        return []
    lines = ["", "Committed layers:"]
    for layer in layers:
        lines.append(f"  {layer.index}. author:  {layer.author or '(none)'}")
        message = layer.message.splitlines() or ["(none)"]
        lines.append(f"     message: {message[0]}")
        lines += [f"              {line}" for line in message[1:]]
        if layer.created_by:
            lines.append(f"     command: {layer.created_by}")
    return lines


def render(analysis: ImageAnalysis, shown: int = SHOWN) -> str:
    image = analysis.image
    result = analysis.efficiency
    deleted_later = sum(change.removed_bytes for change in analysis.changes)
    base = f", the first {image.base_layers} from the base image" if image.base_layers else ""
    lines = [
        f"Image: {image.name} ({image.image_id.short})",
        f"  total size:        {human_size(result.size_bytes)} ({result.size_bytes} bytes in {len(image.layers)} layers{base})",
        f"  efficiency:        {_percent(result.score)}",
        f"  wasted bytes:      {human_size(result.wasted_bytes)} ({result.wasted_bytes} bytes, dive's inefficientBytes)",
        f"  user wasted:       {_percent(result.wasted_user_percent) if result.user_size_bytes else 'n/a'}",
        f"  reclaimable:       {human_size(result.reclaimable_bytes)} (copies beyond the smallest of each path)",
        f"  deleted later:     {human_size(deleted_later)} (files a later layer deletes; they still ship)",
        *_excluded(analysis),
        "",
        "Layers:",
    ]
    rows = [("#", "SIZE", "ADDED", "CHANGED", "REMOVED", "LINE", "STEP")]
    for layer, change in zip(image.layers, analysis.changes, strict=True):
        step = layer.step or "(missing)"
        rows.append(
            (
                str(layer.index),
                human_size(layer.files.content_size),
                f"{change.added} ({human_size(change.added_bytes)})",
                f"{change.modified} ({human_size(change.modified_bytes)})",
                f"{change.removed} ({human_size(change.removed_bytes)})",
                layer.dockerfile_line or ("base" if layer.base else "-"),
                step if len(step) <= 60 else step[:59] + "…",
            )
        )
    lines += _table(rows, right=(0, 1))
    lines += _committed(analysis)
    lines += ["", "Findings:" if analysis.findings else "Findings: (none)"]
    for number, finding in enumerate(analysis.findings, start=1):
        where = f" layer {finding.layer}" + (f", {finding.location}" if finding.location else "")
        where += " (base image)" if finding.in_base else ""
        lines.append(f"  {number}. [{finding.kind}] {human_size(finding.wasted_bytes)} in{where}")
        lines.append(f"     cause: {finding.cause}")
        lines.append(f"     fix:   {finding.fix}")
        for path in finding.paths:
            lines.append(f"       {path}")
    lines.append("")
    if result.inefficient:
        lines.append("Inefficient files:")
        files: list[tuple[str, ...]] = [("Count", "Wasted Space", "File Path")]
        files += [(str(item.count), human_size(item.cumulative_size), item.path) for item in result.inefficient[:shown]]
        lines += _table(files)
        if len(result.inefficient) > shown:
            lines.append(f"  ... and {len(result.inefficient) - shown} more")
    else:
        lines.append("Inefficient files: (none)")
    lines += ["", "Largest files:"]
    lines += _table(
        [(human_size(p.entry.size), p.entry.path, f"layer {p.layer}") for p in analysis.largest_files[:shown]]
        or [("-", "", "")],
        right=(0,),
    )
    lines += ["", "Largest directories:"]
    lines += _table(
        [(human_size(size), path) for path, size in analysis.largest_dirs[:shown]] or [("-", "")], right=(0,)
    )
    return "\n".join(lines)


def render_ci(analysis: ImageAnalysis, results: list[RuleResult], source: str) -> str:
    """dive's CI report: the analysis numbers, then one verdict line per rule and the tally."""
    result = analysis.efficiency
    wasted = f" ({human_size(result.wasted_bytes)})" if result.wasted_bytes else ""
    user = _percent(result.wasted_user_percent) if result.wasted_bytes else "0 %"
    lines = [
        "Analysis:",
        f"  efficiency:        {_percent(result.score)}",
        f"  wastedBytes:       {result.wasted_bytes} bytes{wasted}",
        f"  userWastedPercent: {user}",
        *_excluded(analysis),
        "",
        f"Evaluation ({source}):",
        *(item.line() for item in results),
        "",
        summary(results),
    ]
    return "\n".join(lines)
