"""Sizes and durations written the way dive (go-humanize) and docker (go-units) write them."""

from __future__ import annotations

import math

_HUMANIZE_SUFFIXES = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
_UNITS_SUFFIXES = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: int) -> str:
    """go-humanize Bytes: "10 MB", "8.4 kB", "7 B"."""
    if size < 10:
        return f"{size} B"
    exponent = min(math.floor(math.log(size) / math.log(1000)), len(_HUMANIZE_SUFFIXES) - 1)
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    return (
        f"{value:.1f} {_HUMANIZE_SUFFIXES[exponent]}" if value < 10 else f"{value:.0f} {_HUMANIZE_SUFFIXES[exponent]}"
    )


def docker_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision(size, 3), as `docker history` prints SIZE: "10.5MB", "0B" (4: HumanSize, as
    the prune commands print what they reclaimed)."""
    index = 0
    while size >= 1000 and index < len(_UNITS_SUFFIXES) - 1:
        size /= 1000
        index += 1
    return f"{size:.{precision}g}{_UNITS_SUFFIXES[index]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as `docker history` prints CREATED (followed by " ago")."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
