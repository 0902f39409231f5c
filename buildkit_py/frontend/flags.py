"""Instruction flags (`--name=value`) parsed in one place, with the messages of Docker's `BFlags`.

The parser leaves flags as raw strings with quotes removed; this module checks them against the flags each
instruction knows (Docker 20.10's classic builder's, plus BuildKit's COPY/ADD flags) and returns their values.
Nothing is expanded here: an instruction expands the flags Docker expands (COPY/ADD `--chown`, and BuildKit's
`--chmod` and `ADD --checksum`) when it is dispatched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

__all__ = ["KNOWN_FLAGS", "FlagError", "FlagKind", "ParsedFlags", "parse_flags"]


class FlagKind(Enum):
    STRING = "string"
    BOOL = "bool"
    STRINGS = "strings"  # may be given several times: `--exclude=a --exclude=b`


class FlagError(ValueError):
    """A flag is unknown, repeated or malformed; the caller adds the location."""


# What Docker 20.10's classic builder accepts at parse time, with BuildKit's COPY/ADD flags (--chmod, --link,
# --exclude, COPY --parents, ADD --checksum and --keep-git-dir). RUN --mount (repeatable), --network and --security
# are BuildKit's: what a step may do to the host is decided by the sandbox, and the last two are gated by `--allow`.
KNOWN_FLAGS: Mapping[str, Mapping[str, FlagKind]] = MappingProxyType(
    {
        "from": {"platform": FlagKind.STRING},
        "copy": {
            "from": FlagKind.STRING,
            "chown": FlagKind.STRING,
            "chmod": FlagKind.STRING,
            "link": FlagKind.BOOL,
            "parents": FlagKind.BOOL,
            "exclude": FlagKind.STRINGS,
        },
        "add": {
            "chown": FlagKind.STRING,
            "chmod": FlagKind.STRING,
            "link": FlagKind.BOOL,
            "exclude": FlagKind.STRINGS,
            "checksum": FlagKind.STRING,
            "keep-git-dir": FlagKind.BOOL,
        },
        "run": {"mount": FlagKind.STRINGS, "network": FlagKind.STRING, "security": FlagKind.STRING},
        "healthcheck": {
            "interval": FlagKind.STRING,
            "timeout": FlagKind.STRING,
            "start-period": FlagKind.STRING,
            "retries": FlagKind.STRING,
        },
    }
)


@dataclass(frozen=True)
class ParsedFlags:
    """The flags that were given, by name; `used` keeps the order they appeared in."""

    values: Mapping[str, str | bool | tuple[str, ...]]
    used: tuple[str, ...]

    def string(self, name: str, default: str = "") -> str:
        value = self.values.get(name, default)
        return value if isinstance(value, str) else default

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.values.get(name, ())
        return value if isinstance(value, tuple) else ()

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name, default)
        return value if isinstance(value, bool) else default

    def __contains__(self, name: object) -> bool:
        return name in self.values


def parse_flags(keyword: str, raw_flags: Iterable[str], known: Mapping[str, FlagKind] | None = None) -> ParsedFlags:
    """Check `raw_flags` (each `--name`, `--name=value`) against the flags of `keyword`; raise FlagError."""
    kinds = KNOWN_FLAGS.get(keyword.lower(), {}) if known is None else known
    values: dict[str, str | bool | tuple[str, ...]] = {}
    used: list[str] = []
    for raw in raw_flags:
        if not raw.startswith("--"):
            raise FlagError(f"Arg should start with -- : {raw}")
        if raw == "--":
            break
        name, equals, value = raw[2:].partition("=")
        kind = kinds.get(name)
        if kind is None:
            raise FlagError(f"Unknown flag: {name}")
        if kind is FlagKind.STRINGS:
            if not equals:
                raise FlagError(f"Missing a value on flag: {name}")
            previous = values.get(name, ())
            values[name] = (*(previous if isinstance(previous, tuple) else ()), value)
            if name not in used:
                used.append(name)
            continue
        if name in values:
            raise FlagError(f"Duplicate flag specified: {name}")
        if kind is FlagKind.BOOL:
            values[name] = _boolean(name, value, bool(equals))
        else:
            if not equals:
                raise FlagError(f"Missing a value on flag: {name}")
            values[name] = value
        if name not in used:
            used.append(name)
    return ParsedFlags(values=MappingProxyType(values), used=tuple(used))


def _boolean(name: str, value: str, has_equals: bool) -> bool:
    if has_equals and not value:
        raise FlagError(f"Missing a value on flag: {name}")
    lowered = value.lower()
    if lowered in ("", "true"):
        return True
    if lowered == "false":
        return False
    raise FlagError(f"Expecting boolean value for flag {name}, not: {value}")
