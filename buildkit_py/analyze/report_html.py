"""Self-contained HTML reports: no scripts, no external files; the chart is inline SVG.

The page answers at a glance: how big, how much wasted, which step to fix. A horizontal bar per layer, split by top
directory (one colour per directory across the page), with the bytes of that layer which a later layer deletes or
rewrites drawn as a red band beneath it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ..units import human_size
from .analysis import ImageAnalysis
from .imagediff import ImageDiff

_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#bab0ac",
    "#86bcb6",
)
_OTHER = "#d0d0d0"
_WASTE = "#d62728"
_MAX_DIRS = 9

_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #666; font-family: monospace; margin-bottom: 16px; overflow-wrap: anywhere; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card .v { font-size: 26px; font-weight: 600; } .card .k { color: #666; font-size: 12px; text-transform: uppercase; }
.good { color: #2e7d32; } .warn { color: #b26a00; } .bad { color: #c62828; }
table { border-collapse: collapse; background: #fff; } td, th { padding: 4px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; font-size: 12px; color: #555; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.p { font-family: monospace; }
.finding { background: #fff; border-left: 5px solid #c62828; padding: 8px 12px; margin: 8px 0; border-radius: 4px; }
.finding .t { font-weight: 600; } .finding .fix { color: #1b5e20; } .tag { font-size: 11px; background: #eee;
  border-radius: 3px; padding: 1px 6px; margin-right: 6px; font-family: monospace; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; } .cols > div { min-width: 0; } .plus { color: #c62828; } .minus { color: #2e7d32; }
svg text { font: 12px system-ui, sans-serif; } svg .mono { font-family: monospace; }
"""


def _dir_colours(analyses: Sequence[ImageAnalysis]) -> dict[str, str]:
    totals: dict[str, int] = {}
    for analysis in analyses:
        for change in analysis.changes:
            for directory, size in change.by_top_dir.items():
                totals[directory] = totals.get(directory, 0) + size
    ranked = sorted(totals, key=lambda directory: (-totals[directory], directory))[:_MAX_DIRS]
    return {directory: _PALETTE[index % len(_PALETTE)] for index, directory in enumerate(ranked)}


def wasted_by_layer(analysis: ImageAnalysis) -> dict[int, int]:
    """Bytes each layer ships that a later layer deletes or rewrites."""
    wasted: dict[int, int] = {}
    for change in analysis.changes:
        for placed in [*change.deleted, *change.replaced]:
            wasted[placed.layer] = wasted.get(placed.layer, 0) + placed.entry.size
    return wasted


def layer_chart(analysis: ImageAnalysis, colours: dict[str, str], scale_max: int = 0) -> str:
    """An SVG: one row per layer, segments by top directory, the wasted band underneath, size at the end."""
    label_width, bar_width, size_width, row = 330, 470, 90, 30
    layers = analysis.image.layers
    biggest = max([scale_max, 1, *(layer.files.content_size for layer in layers)])
    wasted = wasted_by_layer(analysis)
    legend_rows = (len(colours) + 2 + 4) // 5
    height = row * len(layers) + 24 * legend_rows + 16
    width = label_width + bar_width + size_width
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'style="max-width:{width}px" role="img">'
        )
    ]
    for position, layer in enumerate(layers):
        y = position * row
        committed = " ".join(
            part for part in (layer.message and f'"{layer.message}"', layer.author and f"by {layer.author}") if part
        )
        label = " ".join(part for part in (f"#{layer.index}", layer.dockerfile_line, committed or layer.step) if part)
        if len(label) > 46:
            label = label[:45] + "…"
        title = "\n".join(part for part in (layer.created_by, committed) if part)
        parts.append(f'<text x="0" y="{y + 15}" class="mono"><title>{escape(title)}</title>')
        parts.append(f"{escape(label)}</text>")
        x = float(label_width)
        change = analysis.changes[layer.index]
        others = layer.files.content_size - sum(size for d, size in change.by_top_dir.items() if d in colours)
        segments = [(d, size, colours[d]) for d, size in sorted(change.by_top_dir.items()) if d in colours]
        segments.append(("other", others, _OTHER))
        for directory, size, colour in segments:
            if size <= 0:
                continue
            length = bar_width * size / biggest
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{max(length, 1):.1f}" height="16" fill="{colour}">'
                f"<title>{escape(directory)}: {human_size(size)}</title></rect>"
            )
            x += length
        lost = wasted.get(layer.index, 0)
        if lost:
            length = bar_width * lost / biggest
            parts.append(
                f'<rect x="{label_width}" y="{y + 21}" width="{max(length, 1):.1f}" height="5" fill="{_WASTE}">'
                f"<title>wasted: {human_size(lost)}</title></rect>"
            )
        parts.append(
            f'<text x="{label_width + bar_width + 8}" y="{y + 15}">{human_size(layer.files.content_size)}</text>'
        )
    y = row * len(layers) + 10
    entries = [*colours.items(), ("other", _OTHER), ("deleted or rewritten later", _WASTE)]
    for index, (name, colour) in enumerate(entries):
        lx = (index % 5) * 178
        ly = y + (index // 5) * 24
        parts.append(f'<rect x="{lx}" y="{ly}" width="14" height="14" fill="{colour}"/>')
        parts.append(
            f'<text x="{lx + 20}" y="{ly + 12}">{escape("/ (files at the root)" if name == "/" else name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _score_class(score: float) -> str:
    return "good" if score >= 0.95 else "warn" if score >= 0.9 else "bad"


def _cards(analysis: ImageAnalysis) -> str:
    result = analysis.efficiency
    cards = [
        ("Total size", human_size(result.size_bytes), ""),
        ("Wasted (dive)", human_size(result.wasted_bytes), "bad" if result.wasted_bytes else "good"),
        ("Efficiency", f"{result.score * 100:.1f} %", _score_class(result.score)),
        ("Findings", str(len(analysis.findings)), "bad" if analysis.findings else "good"),
        ("Layers", str(len(analysis.image.layers)), ""),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{escape(key)}</div><div class="v {cls}">{escape(value)}</div></div>'
            for key, value, cls in cards
        )
        + "</div>"
    )


def _findings(analysis: ImageAnalysis) -> str:
    if not analysis.findings:
        return "<p class='good'>No findings.</p>"
    items = []
    for finding in analysis.findings:
        where = f"layer {finding.layer}" + (f" · {finding.location}" if finding.location else "")
        where += " · base image" if finding.in_base else ""
        paths = ", ".join(escape(path) for path in finding.paths)
        items.append(
            f'<div class="finding"><div class="t"><span class="tag">{escape(finding.kind)}</span>'
            f"{human_size(finding.wasted_bytes)} · {escape(where)}</div>"
            f"<div>{escape(finding.cause)}</div><div class='fix'>Fix: {escape(finding.fix)}</div>"
            f"<div class='sub'>{paths}</div></div>"
        )
    return "".join(items)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"n" if index in numeric else "p"}">{escape(cell)}</td>' for index, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _wasted_table(analysis: ImageAnalysis, shown: int = 25) -> str:
    inefficient = analysis.efficiency.inefficient
    if not inefficient:
        return "<p class='good'>No path appears in more than one layer.</p>"
    rows = [(human_size(item.cumulative_size), str(item.count), item.path) for item in inefficient[:shown]]
    more = f"<p>… and {len(inefficient) - shown} more</p>" if len(inefficient) > shown else ""
    return _table(("Wasted", "Layers", "Path"), rows, numeric=(0, 1)) + more


def _image_section(analysis: ImageAnalysis, colours: dict[str, str], scale_max: int = 0) -> str:
    image = analysis.image
    largest = [(human_size(p.entry.size), f"#{p.layer}", p.entry.path) for p in analysis.largest_files[:10]]
    return (
        f"<h1>{escape(image.name)}</h1><div class='sub'>{escape(str(image.image_id))}</div>"
        + _cards(analysis)
        + "<h2>Layers by size, split by top directory</h2>"
        + layer_chart(analysis, colours, scale_max)
        + "<h2>Findings</h2>"
        + _findings(analysis)
        + "<h2>Wasted bytes (paths in more than one layer)</h2>"
        + _wasted_table(analysis)
        + "<h2>Largest files</h2>"
        + _table(("Size", "Layer", "Path"), largest, numeric=(0,))
    )


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def render_analysis(analysis: ImageAnalysis) -> str:
    return _page(f"pybuild analyze {analysis.image.name}", _image_section(analysis, _dir_colours([analysis])))


def render_diff(result: ImageDiff, analysis_a: ImageAnalysis, analysis_b: ImageAnalysis, shown: int = 40) -> str:
    colours = _dir_colours([analysis_a, analysis_b])
    scale = max([1, *(layer.files.content_size for layer in (*result.a.layers, *result.b.layers))])
    delta = result.size_delta
    sign = "plus" if delta > 0 else "minus" if delta < 0 else ""
    rows = []
    for item in result.files[:shown]:
        symbol = "+" if item.delta > 0 else "-" if item.delta < 0 else "±"
        rows.append(
            f"<tr><td>{escape(item.change)}</td>"
            f'<td class="n {"plus" if item.delta > 0 else "minus"}">{symbol}{human_size(abs(item.delta))}</td>'
            f'<td class="p">{escape(item.path)}</td><td>{escape(item.detail)}</td></tr>'
        )
    files = (
        "<table><tr><th>Change</th><th>Delta</th><th>Path</th><th>What</th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<p>No file differs.</p>"
    )
    body = (
        f"<h1>{escape(result.a.name)} → {escape(result.b.name)}</h1>"
        f'<div class="cards"><div class="card"><div class="k">Size change</div>'
        f'<div class="v {sign}">{"+" if delta > 0 else "-" if delta < 0 else "±"}{human_size(abs(delta))}</div></div>'
        f'<div class="card"><div class="k">Files added / removed / changed</div><div class="v">'
        f"{len(result.of('added'))} / {len(result.of('removed'))} / {len(result.of('changed'))}</div></div></div>"
        f'<div class="cols"><div>{_image_section(analysis_a, colours, scale)}</div>'
        f"<div>{_image_section(analysis_b, colours, scale)}</div></div>"
        f"<h2>Files that differ, largest change first</h2>{files}"
    )
    return _page(f"pybuild diff {result.a.name} {result.b.name}", body)
