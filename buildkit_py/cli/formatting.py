"""Docker's ways of showing sizes, ages and tables."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime


def human_size(size: float) -> str:
    """Docker's units.HumanSizeWithPrecision(size, 3): decimal units, three significant digits (1.24MB, 512B)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


def parse_created(text: str) -> float | None:
    if not text:
        return None
    trimmed = text.rstrip("Z")
    if "." in trimmed:
        head, fraction = trimmed.split(".", 1)
        trimmed = f"{head}.{fraction[:6]}"
    try:
        return datetime.fromisoformat(trimmed + "+00:00").timestamp()
    except ValueError:
        return None


def human_age(created: str) -> str:
    """Docker's "2 minutes ago" style."""
    timestamp = parse_created(created)
    if timestamp is None:
        return "N/A"
    seconds = max(0.0, time.time() - timestamp)
    for unit, length in (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400), ("hour", 3600)):
        if seconds >= length * 2 or (unit == "hour" and seconds >= length):
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count != 1 else ''} ago" if count != 1 else f"About an {unit} ago"
    if seconds >= 60:
        minutes = int(seconds // 60)
        return f"{minutes} minutes ago" if minutes != 1 else "About a minute ago"
    if seconds < 1:
        return "Less than a second ago"
    return f"{int(seconds)} seconds ago"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell plus three spaces, like Docker's tabwriter output."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths[:-1])] + [row[-1]]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)
