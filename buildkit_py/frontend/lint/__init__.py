"""BuildKit's Dockerfile lint rules: `pybuild build --check`, and warnings during a build."""

from __future__ import annotations

from .checks import ImageFacts, LintWarning, lint_dockerfile
from .config import (
    CHECK_BUILD_ARG,
    LintConfig,
    LintOptionError,
    config_from_comments,
    file_config,
    parse_check_options,
    violation,
)
from .rules import RULES, Rule

__all__ = [
    "CHECK_BUILD_ARG",
    "RULES",
    "ImageFacts",
    "LintConfig",
    "LintOptionError",
    "LintWarning",
    "Rule",
    "config_from_comments",
    "file_config",
    "lint_dockerfile",
    "parse_check_options",
    "violation",
]
