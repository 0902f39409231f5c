"""dive's CI rules (`cmd/dive/cli/internal/command/ci/rules.go`), read and judged the way dive does.

Values are strings: `lowestEfficiency` and `highestUserWastedPercent` parse as Go floats in 0..1, `highestWastedBytes`
as go-humanize sizes ("20MB", "1.5 GiB", "42"); "", "disabled", "off" and "false" (any case) switch a rule off. A
`.dive-ci` file, when present, replaces the flags: its `rules:` are laid over dive's defaults.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import BuildError
from .efficiency import Efficiency

LOWEST_EFFICIENCY = "lowestEfficiency"
HIGHEST_WASTED_BYTES = "highestWastedBytes"
HIGHEST_USER_WASTED_PERCENT = "highestUserWastedPercent"
DEFAULTS = {LOWEST_EFFICIENCY: "0.9", HIGHEST_WASTED_BYTES: "disabled", HIGHEST_USER_WASTED_PERCENT: "0.1"}
DEFAULT_CONFIG = ".dive-ci"

_BYTE_UNITS = {"": 1, "b": 1}
for _index, _prefix in enumerate("kmgtpe", start=1):
    _BYTE_UNITS[_prefix] = _BYTE_UNITS[_prefix + "b"] = 1000**_index
    _BYTE_UNITS[_prefix + "i"] = _BYTE_UNITS[_prefix + "ib"] = 1024**_index
_GO_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


class CIConfigError(BuildError):
    """A rule value dive would refuse."""


def go_parse_float(text: str) -> float:
    """strconv.ParseFloat for decimal input: no surrounding spaces, no underscores."""
    if not _GO_FLOAT.fullmatch(text):
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    return float(text)


def parse_bytes(text: str) -> int:
    """go-humanize ParseBytes: leading digits (commas allowed), then an optional unit, case-insensitive."""
    digits = 0
    for char in text:
        if not (char.isdigit() or char in ".,"):
            break
        digits += 1
    number = go_parse_float(text[:digits].replace(",", ""))
    unit = text[digits:].strip().lower()
    if unit not in _BYTE_UNITS:
        raise ValueError(f"unhandled size name: {unit}")
    value = number * _BYTE_UNITS[unit]
    if value >= 2.0**64:
        raise ValueError(f"too large: {text}")
    return int(value)


def go_float(value: float) -> str:
    """Go's %v of a float64."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    return text.removesuffix(".0")


def is_disabled(value: str) -> bool:
    return value.strip().lower() in ("", "disabled", "off", "false")


@dataclass(frozen=True)
class RuleResult:
    key: str
    status: str  # PASS, FAIL, SKIP
    message: str

    def line(self) -> str:
        return f"  {self.status}  {self.key} ({self.message})" if self.message else f"  {self.status}  {self.key}"


@dataclass(frozen=True)
class Rules:
    lowest_efficiency: float | None
    highest_wasted_bytes: int | None
    highest_user_wasted_percent: float | None
    values: dict[str, str]

    @classmethod
    def parse(cls, values: dict[str, str]) -> Rules:
        merged = {**DEFAULTS, **values}
        errors = []
        lowest = highest_bytes = highest_percent = None
        try:
            lowest = _ratio(LOWEST_EFFICIENCY, merged[LOWEST_EFFICIENCY])
        except CIConfigError as error:
            errors.append(str(error))
        if not is_disabled(merged[HIGHEST_WASTED_BYTES]):
            try:
                highest_bytes = parse_bytes(merged[HIGHEST_WASTED_BYTES])
            except ValueError as error:
                errors.append(
                    f"invalid {HIGHEST_WASTED_BYTES} config value, given {merged[HIGHEST_WASTED_BYTES]!r}: {error}"
                )
        try:
            highest_percent = _ratio(HIGHEST_USER_WASTED_PERCENT, merged[HIGHEST_USER_WASTED_PERCENT])
        except CIConfigError as error:
            errors.append(str(error))
        if errors:
            raise CIConfigError("\n".join(errors))
        return cls(lowest, highest_bytes, highest_percent, merged)

    @classmethod
    def from_file(cls, path: Path) -> Rules:
        """A .dive-ci file: `rules:` with dive's camelCase keys; values are read as their YAML text."""
        try:
            document = yaml.compose(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise CIConfigError(f"failed to read CI config file {path}: {error}") from error
        values: dict[str, str] = {}
        if isinstance(document, yaml.MappingNode):
            for key, value in document.value:
                if key.value == "rules" and isinstance(value, yaml.MappingNode):
                    for rule_key, rule_value in value.value:
                        if rule_key.value in DEFAULTS and isinstance(rule_value, yaml.ScalarNode):
                            text = rule_value.value
                            values[rule_key.value] = "" if rule_value.tag.endswith(":null") else text
        return cls.parse(values)

    def evaluate(self, result: Efficiency) -> list[RuleResult]:
        """One result per rule, sorted by key as dive prints them."""
        results = []
        if self.lowest_efficiency is None:
            results.append(RuleResult(LOWEST_EFFICIENCY, "SKIP", "disabled"))
        elif self.lowest_efficiency > result.score:
            message = (
                f"image efficiency is too low (efficiency={result.score:2.2f} < "
                f"threshold={go_float(self.lowest_efficiency)})"
            )
            results.append(RuleResult(LOWEST_EFFICIENCY, "FAIL", message))
        else:
            results.append(RuleResult(LOWEST_EFFICIENCY, "PASS", self.values[LOWEST_EFFICIENCY]))
        if self.highest_wasted_bytes is None:
            results.append(RuleResult(HIGHEST_WASTED_BYTES, "SKIP", "disabled"))
        elif result.wasted_bytes > self.highest_wasted_bytes:
            message = (
                f"too many bytes wasted (wasted-bytes={result.wasted_bytes} > threshold={self.highest_wasted_bytes})"
            )
            results.append(RuleResult(HIGHEST_WASTED_BYTES, "FAIL", message))
        else:
            results.append(RuleResult(HIGHEST_WASTED_BYTES, "PASS", self.values[HIGHEST_WASTED_BYTES]))
        percent = result.wasted_user_percent
        if self.highest_user_wasted_percent is None:
            results.append(RuleResult(HIGHEST_USER_WASTED_PERCENT, "SKIP", "disabled"))
        elif percent > self.highest_user_wasted_percent:
            message = (
                "too many bytes wasted, relative to the user bytes added "
                f"(%-user-wasted-bytes={percent:2.2f} > threshold={go_float(self.highest_user_wasted_percent)})"
            )
            results.append(RuleResult(HIGHEST_USER_WASTED_PERCENT, "FAIL", message))
        else:
            results.append(RuleResult(HIGHEST_USER_WASTED_PERCENT, "PASS", self.values[HIGHEST_USER_WASTED_PERCENT]))
        return sorted(results, key=lambda item: item.key)


def _ratio(key: str, value: str) -> float | None:
    if is_disabled(value):
        return None
    try:
        threshold = go_parse_float(value)
    except ValueError as error:
        raise CIConfigError(f"invalid {key} config value, given {value!r}: {error}") from error
    if threshold < 0 or threshold > 1:
        raise CIConfigError(f"{key} config value is outside allowed range (0-1), given '{threshold:f}'")
    return threshold


def load_rules(flags: dict[str, str | None], config_path: Path | None) -> tuple[Rules, str]:
    """The rules and where they came from: the .dive-ci file when it exists (as dive, it wins), else the flags."""
    if config_path is not None and config_path.exists():
        return Rules.from_file(config_path), str(config_path)
    given = {key: value for key, value in flags.items() if value is not None}
    return Rules.parse(given), "flags" if given else "defaults"


def passed(results: list[RuleResult]) -> bool:
    return all(result.status != "FAIL" for result in results)


def summary(results: list[RuleResult]) -> str:
    """dive's closing line: "PASS [pass:2 skip:1]"."""
    counts = [(name, sum(1 for result in results if result.status == status)) for name, status in _TALLY]
    parts = " ".join(f"{name}:{count}" for name, count in counts if count)
    return f"{'PASS' if passed(results) else 'FAIL'} [{parts}]"


_TALLY = (("pass", "PASS"), ("fail", "FAIL"), ("warn", "WARN"), ("skip", "SKIP"))
