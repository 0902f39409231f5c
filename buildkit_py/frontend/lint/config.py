"""Which lint rules run and whether a finding fails the build: `# check=skip=A,B;error=true`, the
`BUILDKIT_DOCKERFILE_CHECK` build argument (which replaces the directive), and `# check=` comments right above one
instruction (which add to the file's for that instruction). BuildKit's `linter.ParseLintOptions`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ...errors import DockerfileSyntaxError, SourceLocation
from ...gostring import go_quote
from ..parser import ParsedDockerfile

__all__ = [
    "CHECK_BUILD_ARG",
    "LintConfig",
    "LintOptionError",
    "config_from_comments",
    "file_config",
    "parse_check_options",
    "violation",
]

CHECK_BUILD_ARG = "BUILDKIT_DOCKERFILE_CHECK"
_COMMENT_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class LintOptionError(ValueError):
    """A malformed check option; the message is BuildKit's."""


@dataclass(frozen=True)
class LintConfig:
    skip: frozenset[str] = field(default_factory=frozenset)
    skip_all: bool = False
    error: bool = False
    experimental: frozenset[str] = field(default_factory=frozenset)
    experimental_all: bool = False

    def runs(self, rule: str, experimental: bool = False) -> bool:
        if experimental:
            return self.experimental_all or rule in self.experimental
        return not self.skip_all and rule not in self.skip

    def merged(self, other: LintConfig) -> LintConfig:
        """This config with what `other` skips, enables or turns to errors added."""
        return LintConfig(
            skip=self.skip | other.skip,
            skip_all=self.skip_all or other.skip_all,
            error=self.error,
            experimental=self.experimental | other.experimental,
            experimental_all=self.experimental_all or other.experimental_all,
        )


def _names(value: str) -> frozenset[str]:
    return frozenset(name.strip() for name in value.split(","))


def parse_check_options(text: str) -> LintConfig:
    """`skip=all|Rule,...;error=BOOL;experimental=all|Rule,...`; raise LintOptionError."""
    text = text.strip()
    if not text:
        return LintConfig()
    skip: frozenset[str] = frozenset()
    experimental: frozenset[str] = frozenset()
    skip_all = experimental_all = error = False
    for part in text.split(";", 2):
        key, equals, value = part.partition("=")
        if not equals:
            raise LintOptionError(f"invalid check option {go_quote(part)}")
        key, value = key.strip(), value.strip()
        if key == "skip":
            skip_all = value == "all"
            skip = frozenset() if skip_all else _names(value)
        elif key == "experimental":
            experimental_all = value == "all"
            experimental = frozenset() if experimental_all else _names(value)
        elif key == "error":
            if value not in _TRUE | _FALSE:
                raise LintOptionError(
                    f"failed to parse check option {go_quote(part)}: strconv.ParseBool: parsing {go_quote(value)}: "
                    "invalid syntax"
                )
            error = value in _TRUE
        else:
            raise LintOptionError(f"invalid check option {go_quote(key)}")
    return LintConfig(skip, skip_all, error, experimental, experimental_all)


def config_from_comments(config: LintConfig, comments: tuple[str, ...]) -> LintConfig:
    """`config` merged with the first `check=...` comment among an instruction's comments (its value ends at the
    first space, so `# check=skip=all // why` works). A malformed one is ignored, as BuildKit does."""
    for comment in comments:
        match = _COMMENT_DIRECTIVE.fullmatch(comment)
        if match is None or match.group(1).lower() != "check":
            continue
        try:
            local = parse_check_options(match.group(2).split(" ", 1)[0])
        except LintOptionError:
            return config
        return config.merged(local)
    return config


def file_config(parsed: ParsedDockerfile, build_args: Mapping[str, str]) -> LintConfig:
    """The file's config: the BUILDKIT_DOCKERFILE_CHECK build argument if given, else the `# check=` directive.
    A malformed one raises DockerfileSyntaxError (with the directive's line)."""
    if CHECK_BUILD_ARG in build_args:
        try:
            return parse_check_options(build_args[CHECK_BUILD_ARG])
        except LintOptionError as error:
            raise DockerfileSyntaxError(f"failed to parse {CHECK_BUILD_ARG}: {error}") from None
    value = parsed.directives.get("check")
    if value is None:
        return LintConfig()
    try:
        return parse_check_options(value)
    except LintOptionError as error:
        line = parsed.directive_lines.get("check", 1)
        location = SourceLocation(parsed.filename, line, line, f"# check={value}")
        raise DockerfileSyntaxError(f"failed to parse check options: {error}", location) from None


def violation(rules: Iterable[str], config: LintConfig) -> str | None:
    """BuildKit's error for `error=true` when some rule was reported, naming the rules (sorted here)."""
    names = sorted(set(rules))
    if not config.error or not names:
        return None
    return f"lint violation found for rules: {', '.join(names)}"
