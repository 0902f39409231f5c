"""pybuild diff: how two images differ in size, per layer and per file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BuildError
from ..fs.output import check_output_path, write_output
from ..units import human_size
from .common import open_store

if TYPE_CHECKING:
    from ..analyze.imagediff import ImageDiff


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two images",
        description="Compare two images: total size, layers (paired by content digest, then by Dockerfile step; "
        "never by position alone) and files added, removed and changed, largest size change first.",
    )
    parser.add_argument("image_a", metavar="IMAGE_A", help="an image, or a container (alone: its changes, A/C/D)")
    parser.add_argument("image_b", metavar="IMAGE_B", nargs="?")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument("--top", type=int, default=30, help="how many files to list per kind of change (table)")
    parser.set_defaults(func=run)


def _signed(size: int) -> str:
    return ("+" if size > 0 else "-" if size < 0 else "±") + human_size(abs(size))


def render_text(result: ImageDiff, top: int) -> str:
    a, b = result.a, result.b
    lines = [
        f"A: {a.name} ({a.image_id.short})  {human_size(a.content_size)} in {len(a.layers)} layers",
        f"B: {b.name} ({b.image_id.short})  {human_size(b.content_size)} in {len(b.layers)} layers",
        f"size: {_signed(result.size_delta)} ({result.size_delta:+d} bytes)",
        "",
        "Layers:",
    ]
    rows = [("A", "B", "MATCH", "SIZE A", "SIZE B", "DELTA", "STEP")]
    for pair in result.layers:
        layer = pair.b or pair.a
        assert layer is not None
        rows.append(
            (
                str(pair.a.index) if pair.a else "-",
                str(pair.b.index) if pair.b else "-",
                pair.match,
                human_size(pair.a.files.content_size) if pair.a else "-",
                human_size(pair.b.files.content_size) if pair.b else "-",
                _signed(pair.delta),
                " ".join(part for part in (layer.dockerfile_line, layer.step) if part)[:70],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for change in ("added", "removed", "changed"):
        items = result.of(change)
        total = sum(item.delta for item in items)
        lines += ["", f"Files {change}: {len(items)} ({_signed(total)})"]
        for item in items[:top]:
            detail = f"  [{item.detail}]" if item.detail else ""
            lines.append(f"  {_signed(item.delta):>10}  {item.path}{detail}")
        if len(items) > top:
            lines.append(f"  ... and {len(items) - top} more")
    return "\n".join(lines)


def container_diff(args: argparse.Namespace) -> int:
    """`pybuild diff CONTAINER`: Docker's A/C/D list of the container's changes."""
    # lazy: the container machinery (70 modules) loads when `diff` runs, not for `--help`
    from ..container.changes import container_changes
    from ..container.layout import ContainerLayout
    from ..container.lifecycle import find
    from ..container.plan import image_lowers

    try:
        with open_store(args) as store:
            row = find(store, args.image_a)
            changes = container_changes(ContainerLayout(store.root, row.container_id).upper, image_lowers(store, row))
    except BuildError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    for change in changes:
        print(change)
    return 0


def run(args: argparse.Namespace) -> int:
    # lazy: analyze loads when an image diff runs, not for `--help`
    from ..analyze import imagediff

    if args.html:
        check_output_path(args.html, "HTML report")
    if args.image_b is None:
        return container_diff(args)
    with open_store(args) as store:
        result = imagediff.diff(store, args.image_a, args.image_b)
        if args.html:
            # lazy: only --html analyses both images
            from ..analyze.analysis import analyze_image
            from ..analyze.report_html import render_diff

            page = render_diff(result, analyze_image(result.a), analyze_image(result.b))
            write_output(args.html, page, "HTML report")
    if args.format == "json":
        print(json.dumps(imagediff.to_json(result), indent=2))
    else:
        print(render_text(result, args.top))
    return 0
