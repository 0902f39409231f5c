"""BuildKit's Dockerfile lint rules (frontend/dockerfile/linter/ruleset.go): names, descriptions and links.

Each check formats its own message with BuildKit's wording; this table gives what is printed beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["RULES", "Rule"]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    url: str = ""
    experimental: bool = False


def _rule(name: str, slug: str, description: str) -> Rule:
    return Rule(name, description, f"https://docs.docker.com/go/dockerfile/rule/{slug}/" if slug else "")


RULES: Mapping[str, Rule] = MappingProxyType(
    {
        rule.name: rule
        for rule in (
            _rule("StageNameCasing", "stage-name-casing", "Stage names should be lowercase"),
            _rule("FromAsCasing", "from-as-casing", "The 'as' keyword should match the case of the 'from' keyword"),
            _rule(
                "NoEmptyContinuation",
                "no-empty-continuation",
                "Empty continuation lines will become errors in a future release",
            ),
            _rule(
                "ConsistentInstructionCasing",
                "consistent-instruction-casing",
                "All commands within the Dockerfile should use the same casing (either upper or lower)",
            ),
            _rule("DuplicateStageName", "duplicate-stage-name", "Stage names should be unique"),
            _rule("ReservedStageName", "reserved-stage-name", "Reserved words should not be used as stage names"),
            _rule(
                "JSONArgsRecommended",
                "json-args-recommended",
                "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
            ),
            _rule(
                "MaintainerDeprecated",
                "maintainer-deprecated",
                "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
            ),
            _rule("UndefinedArgInFrom", "undefined-arg-in-from", "FROM command must use declared ARGs"),
            _rule(
                "WorkdirRelativePath",
                "workdir-relative-path",
                "Relative workdir without an absolute workdir declared within the build can have unexpected "
                "results if the base image changes",
            ),
            _rule("UndefinedVar", "undefined-var", "Variables should be defined before their use"),
            _rule(
                "MultipleInstructionsDisallowed",
                "multiple-instructions-disallowed",
                "Multiple instructions of the same type should not be used in the same stage",
            ),
            _rule(
                "LegacyKeyValueFormat",
                "legacy-key-value-format",
                "Legacy key/value format with whitespace separator should not be used",
            ),
            _rule("InvalidBaseImagePlatform", "", "Base image platform does not match expected target platform"),
            _rule(
                "RedundantTargetPlatform",
                "redundant-target-platform",
                "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
            ),
            _rule(
                "SecretsUsedInArgOrEnv",
                "secrets-used-in-arg-or-env",
                "Sensitive data should not be used in the ARG or ENV commands",
            ),
            _rule(
                "InvalidDefaultArgInFrom",
                "invalid-default-arg-in-from",
                "Default value for global ARG results in an empty or invalid base image name",
            ),
            _rule(
                "FromPlatformFlagConstDisallowed",
                "from-platform-flag-const-disallowed",
                "FROM --platform flag should not use a constant value",
            ),
            _rule("CopyIgnoredFile", "copy-ignored-file", "Attempting to Copy file that is excluded by .dockerignore"),
            _rule("ExposeProtoCasing", "expose-proto-casing", "Protocol in EXPOSE instruction should be lowercase"),
            _rule(
                "ExposeInvalidFormat",
                "expose-invalid-format",
                "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an "
                "error in a future release",
            ),
        )
    }
)
