"""Docker's ways of showing sizes, ages and tables."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from ..units import docker_size, human_duration


def human_size(size: float) -> str:
    """Docker's units.HumanSizeWithPrecision(size, 3): decimal units, three significant digits (1.24MB, 512B)."""
    return docker_size(size)


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
    """Docker's "2 minutes ago" style of an RFC 3339 time ("N/A" when it is not one)."""
    timestamp = parse_created(created)
    if timestamp is None:
        return "N/A"
    return age_of(timestamp)


def age_of(timestamp: float) -> str:
    """Docker's "2 minutes ago" style of a Unix time."""
    return human_duration(max(0.0, time.time() - timestamp)) + " ago"


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
