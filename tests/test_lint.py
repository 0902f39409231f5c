"""BuildKit's lint rules, table-driven from the cases of BuildKit's frontend/dockerfile/dockerfile_check_test.go.

Each case: a Dockerfile (and maybe a .dockerignore and build args), the warnings BuildKit reports as (rule, message,
line), and the error BuildKit gives, if any. Base images are taken to set PATH, as the images those tests use do.
The experimental InvalidDefinitionDescription rule and the base-image platform cases (which need a registry with a
foreign-platform image) are left out; InvalidBaseImagePlatform is tested below with an image of another platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from buildkit_py.context.dockerignore import parse_ignore_file
from buildkit_py.errors import DockerfileSyntaxError
from buildkit_py.frontend.lint import (
    ImageFacts,
    LintConfig,
    config_from_comments,
    file_config,
    lint_dockerfile,
    parse_check_options,
    violation,
)
from buildkit_py.frontend.parser import parse_dockerfile
from buildkit_py.image.config import DEFAULT_PATH


@dataclass(frozen=True)
class LintCase:
    name: str
    dockerfile: str
    dockerignore: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    warnings: list[tuple[str, str, int]] = field(default_factory=list)


def _image_facts(name: str) -> ImageFacts:
    return ImageFacts(env=(("PATH", DEFAULT_PATH),))


def run_case(case: LintCase) -> tuple[list[tuple[str, str, int]], str | None]:
    parsed = parse_dockerfile(case.dockerfile)
    config = file_config(parsed, case.build_args)
    ignore = parse_ignore_file(case.dockerignore) if case.dockerignore is not None else None
    warnings, error = lint_dockerfile(
        parsed, config, build_args=case.build_args, image_facts=_image_facts, ignore=ignore
    )
    found = [(warning.rule, warning.message, warning.line) for warning in warnings]
    failure = error.message if error is not None else violation((warning.rule for warning in warnings), config)
    return found, failure


CASES = [
    LintCase(
        "testCopyIgnoredFiles-1",
        "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n",
        dockerignore="\nDockerfile\n",
        warnings=[
            ("CopyIgnoredFile", 'Attempting to Copy file "Dockerfile" that is excluded by .dockerignore', 3),
            ("CopyIgnoredFile", 'Attempting to Add file "Dockerfile" that is excluded by .dockerignore', 4),
        ],
    ),
    LintCase(
        "testCopyIgnoredFiles-2",
        "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n",
        dockerignore="\nDockerfile\n",
        warnings=[
            ("CopyIgnoredFile", 'Attempting to Copy file "Dockerfile" that is excluded by .dockerignore', 3),
            ("CopyIgnoredFile", 'Attempting to Add file "Dockerfile" that is excluded by .dockerignore', 4),
        ],
    ),
    LintCase(
        "testCopyIgnoredFiles-3",
        "# check=skip=CopyIgnoredFile\n\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n",
        dockerignore="\nDockerfile\n",
        warnings=[],
    ),
    LintCase(
        "testCopyIgnoredFiles-4",
        "\nFROM scratch AS base\nCOPY Dockerfile /foobar\nADD Dockerfile /windy\n\nFROM base\nCOPY --from=base /foobar /Dockerfile\n",
        dockerignore="\nfoobar\n",
        warnings=[],
    ),
    LintCase(
        "testCopyIgnoredFiles-5",
        "\nFROM scratch\nCOPY ./Dockerfile .\n",
        dockerignore="\n**\n!Dockerfile\n",
        warnings=[],
    ),
    LintCase(
        "testCopyIgnoredFiles-6",
        "\nFROM scratch\nCOPY . .\n\t",
        dockerignore="\n**\n!Dockerfile\n",
        warnings=[],
    ),
    LintCase(
        "testCopyIgnoredFileContextRoot-1",
        "\nFROM scratch\nCOPY . .\n",
        dockerignore="\n.*\n",
        warnings=[],
    ),
    LintCase(
        "testCopyIgnoredFileContextRoot-2",
        "\nFROM scratch\nCOPY . .\n",
        dockerignore="\n*\n",
        warnings=[
            ("CopyIgnoredFile", 'Attempting to Copy file "." that is excluded by .dockerignore', 3),
        ],
    ),
    LintCase(
        "testSecretsUsedInArgOrEnv-1",
        "# check=skip=InvalidDefinitionDescription\n\nFROM scratch\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\nENV password=bar secret=baz\nARG super_duper_secret_token=foo auth=bar\nENV apikey=bar sunflower=foo\nENV git_key=\nENV PUBLIC_KEY=\nARG public_token\nARG SECRET_PASSPHRASE_FILE\nENV password_file=bar secret_File=baz\nARG AUTH_MODULE_VERSION\n# check=skip=SecretsUsedInArgOrEnv // allow secret in environment\nENV password=bar\n# check=skip=SecretsUsedInArgOrEnv // allow secret in arg\nARG password\n# check=skip=all // is local to only this instruction\nENV alternate_password=bar\n# check=skip=all // is local to only this instruction\nARG alternate_password\n",
        warnings=[
            (
                "SecretsUsedInArgOrEnv",
                'Do not use ARG or ENV instructions for sensitive data (ARG "SECRET_PASSPHRASE")',
                4,
            ),
            ("SecretsUsedInArgOrEnv", 'Do not use ARG or ENV instructions for sensitive data (ENV "SUPER_Secret")', 5),
            ("SecretsUsedInArgOrEnv", 'Do not use ARG or ENV instructions for sensitive data (ENV "password")', 6),
            ("SecretsUsedInArgOrEnv", 'Do not use ARG or ENV instructions for sensitive data (ENV "secret")', 6),
            ("SecretsUsedInArgOrEnv", 'Do not use ARG or ENV instructions for sensitive data (ARG "auth")', 7),
            (
                "SecretsUsedInArgOrEnv",
                'Do not use ARG or ENV instructions for sensitive data (ARG "super_duper_secret_token")',
                7,
            ),
            ("SecretsUsedInArgOrEnv", 'Do not use ARG or ENV instructions for sensitive data (ENV "apikey")', 8),
            ("SecretsUsedInArgOrEnv", 'Do not use ARG or ENV instructions for sensitive data (ENV "git_key")', 9),
        ],
    ),
    LintCase(
        "testAllTargetUnmarshal-1",
        "\nFROM scratch AS first\nCOPY $foo .\n\nFROM scratch AS second\nCOPY $bar .\n",
        warnings=[
            ("UndefinedVar", "Usage of undefined variable '$foo'", 3),
            ("UndefinedVar", "Usage of undefined variable '$bar'", 6),
        ],
    ),
    LintCase(
        "testRuleCheckOption-1",
        "#check=skip=all\nFROM scratch as base\ncopy Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testRuleCheckOption-2",
        "#check=skip=all;error=true\nFROM scratch as base\ncopy Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testRuleCheckOption-3",
        "#check=skip=ConsistentInstructionCasing,FromAsCasing\nFROM scratch as base\ncopy Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testRuleCheckOption-4",
        "#check=skip=ConsistentInstructionCasing,FromAsCasing;error=true\nFROM scratch as base\ncopy Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testRuleCheckOption-5",
        "#check=skip=ConsistentInstructionCasing\nFROM scratch as base\ncopy Dockerfile .\n",
        warnings=[
            ("FromAsCasing", "'as' and 'FROM' keywords' casing do not match", 2),
        ],
    ),
    LintCase(
        "testRuleCheckOption-6",
        "#check=skip=ConsistentInstructionCasing;error=true\nFROM scratch as base\ncopy Dockerfile .\n",
        error="lint violation found for rules: FromAsCasing",
        warnings=[
            ("FromAsCasing", "'as' and 'FROM' keywords' casing do not match", 2),
        ],
    ),
    LintCase(
        "testRuleCheckOption-7",
        "#check=skip=all\nFROM scratch as base\ncopy Dockerfile .\n",
        build_args={"BUILDKIT_DOCKERFILE_CHECK": "skip=ConsistentInstructionCasing;error=true"},
        error="lint violation found for rules: FromAsCasing",
        warnings=[
            ("FromAsCasing", "'as' and 'FROM' keywords' casing do not match", 2),
        ],
    ),
    LintCase(
        "testRuleCheckOption-8",
        "#check=error=true\nFROM scratch as base\ncopy Dockerfile .\n",
        build_args={"BUILDKIT_DOCKERFILE_CHECK": "skip=all"},
        warnings=[],
    ),
    LintCase(
        "testStageName-1",
        "\n# warning: stage name should be lowercase\n#\nFROM scratch AS BadStageName\n\n# warning: 'as' should match 'FROM' cmd casing.\n#\nFROM scratch as base2\n\nFROM scratch AS base3\n",
        warnings=[
            ("StageNameCasing", "Stage name 'BadStageName' should be lowercase", 4),
            ("FromAsCasing", "'as' and 'FROM' keywords' casing do not match", 8),
        ],
    ),
    LintCase(
        "testStageName-2",
        "\n# warning: 'AS' should match 'from' cmd casing.\n#\nfrom scratch AS base\n\nfrom scratch as base2\n",
        warnings=[
            ("FromAsCasing", "'AS' and 'from' keywords' casing do not match", 4),
        ],
    ),
    LintCase(
        "testNoEmptyContinuation-1",
        "\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\nCOPY Dockerfile \\\n.\n",
        warnings=[
            ("NoEmptyContinuation", "Empty continuation line", 6),
        ],
    ),
    LintCase(
        "testConsistentInstructionCasing-1",
        "\n# warning: 'FROM' should be either lowercased or uppercased\n#\nFrom scratch as base\nFROM scratch AS base2\n",
        warnings=[
            (
                "ConsistentInstructionCasing",
                "Command 'From' should match the case of the command majority (uppercase)",
                4,
            ),
        ],
    ),
    LintCase(
        "testConsistentInstructionCasing-2",
        "\nFROM scratch\n# warning: 'copy' should match command majority's casing (uppercase)\ncopy Dockerfile /foo\nCOPY Dockerfile /bar\n",
        warnings=[
            (
                "ConsistentInstructionCasing",
                "Command 'copy' should match the case of the command majority (uppercase)",
                4,
            ),
        ],
    ),
    LintCase(
        "testConsistentInstructionCasing-3",
        "\n# warning: 'frOM' should be either lowercased or uppercased\n#\nfrOM scratch as base\nfrom scratch as base2\n",
        warnings=[
            (
                "ConsistentInstructionCasing",
                "Command 'frOM' should match the case of the command majority (lowercase)",
                4,
            ),
        ],
    ),
    LintCase(
        "testConsistentInstructionCasing-4",
        "\nfrom scratch\n# warning: 'COPY' should match command majority's casing (lowercase)\nCOPY Dockerfile /foo\ncopy Dockerfile /bar\n",
        warnings=[
            (
                "ConsistentInstructionCasing",
                "Command 'COPY' should match the case of the command majority (lowercase)",
                4,
            ),
        ],
    ),
    LintCase(
        "testConsistentInstructionCasing-5",
        "\n# warning: 'from' should match command majority's casing (uppercase)\n#\nfrom scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\nCOPY Dockerfile /baz\n",
        warnings=[
            (
                "ConsistentInstructionCasing",
                "Command 'from' should match the case of the command majority (uppercase)",
                4,
            ),
        ],
    ),
    LintCase(
        "testConsistentInstructionCasing-6",
        "\n# warning: 'FROM' should match command majority's casing (lowercase)\n#\nFROM scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\ncopy Dockerfile /baz\n",
        warnings=[
            (
                "ConsistentInstructionCasing",
                "Command 'FROM' should match the case of the command majority (lowercase)",
                4,
            ),
        ],
    ),
    LintCase(
        "testConsistentInstructionCasing-7",
        "\nfrom scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\n",
        warnings=[],
    ),
    LintCase(
        "testConsistentInstructionCasing-8",
        "\nFROM scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\n",
        warnings=[],
    ),
    LintCase(
        "testConsistentInstructionCasing-9",
        "\nFROM scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\n",
        warnings=[],
    ),
    LintCase(
        "testDuplicateStageName-1",
        "\nFROM scratch AS b\nFROM scratch AS b\n",
        warnings=[
            ("DuplicateStageName", 'Duplicate stage name "b", stage names should be unique', 3),
        ],
    ),
    LintCase(
        "testDuplicateStageName-2",
        "\nFROM scratch AS b1\nFROM scratch AS b2\n",
        warnings=[],
    ),
    LintCase(
        "testReservedStageName-1",
        "\nFROM scratch AS scratch\nFROM scratch AS context\n",
        warnings=[
            ("ReservedStageName", 'Stage name should not use the same name as reserved stage "scratch"', 2),
            ("ReservedStageName", 'Stage name should not use the same name as reserved stage "context"', 3),
        ],
    ),
    LintCase(
        "testReservedStageName-2",
        "\nFROM scratch\nFROM scratch AS a\n",
        warnings=[],
    ),
    LintCase(
        "testJSONArgsRecommended-1",
        "\nFROM scratch\nCMD mycommand\n",
        warnings=[
            (
                "JSONArgsRecommended",
                "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
                3,
            ),
        ],
    ),
    LintCase(
        "testJSONArgsRecommended-2",
        "\nFROM scratch\nENTRYPOINT mycommand\n",
        warnings=[
            (
                "JSONArgsRecommended",
                "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
                3,
            ),
        ],
    ),
    LintCase(
        "testJSONArgsRecommended-3",
        '\nFROM scratch\nSHELL ["/usr/bin/customshell"]\nCMD mycommand\n',
        warnings=[],
    ),
    LintCase(
        "testJSONArgsRecommended-4",
        '\nFROM scratch\nSHELL ["/usr/bin/customshell"]\nENTRYPOINT mycommand\n',
        warnings=[],
    ),
    LintCase(
        "testJSONArgsRecommended-5",
        '\nFROM scratch AS base\nSHELL ["/usr/bin/customshell"]\n\nFROM base\nCMD mycommand\n',
        warnings=[],
    ),
    LintCase(
        "testJSONArgsRecommended-6",
        '\nFROM scratch AS base\nSHELL ["/usr/bin/customshell"]\n\nFROM base\nENTRYPOINT mycommand\n',
        warnings=[],
    ),
    LintCase(
        "testMaintainerDeprecated-1",
        "\nFROM scratch\nMAINTAINER me@example.org\n",
        warnings=[
            ("MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label", 3),
        ],
    ),
    LintCase(
        "testMaintainerDeprecated-2",
        '\nFROM scratch\nLABEL org.opencontainers.image.authors="me@example.org"\n',
        warnings=[],
    ),
    LintCase(
        "testMaintainerDeprecated-3",
        "\nFROM scratch\n# check=skip=JSONArgsRecommended\nCMD mycommand\n",
        warnings=[],
    ),
    LintCase(
        "testMaintainerDeprecated-4",
        "\nFROM scratch\n# check=skip=JSONArgsRecommended\nENTRYPOINT mycommand\n",
        warnings=[],
    ),
    LintCase(
        "testMaintainerDeprecated-5",
        "\nFROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER me@example.org\n",
        warnings=[],
    ),
    LintCase(
        "testWarningsBeforeError-1",
        "\nFROM scratch AS BadStageName\nMAINTAINER me@example.org\nBADCMD\n",
        error="unknown instruction: BADCMD",
        warnings=[
            ("StageNameCasing", "Stage name 'BadStageName' should be lowercase", 2),
            ("MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label", 3),
        ],
    ),
    LintCase(
        "testUndeclaredArg-1",
        "\nARG base=scratch\nFROM $base\nCOPY Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testUndeclaredArg-2",
        "\nARG BUILDPLATFORM=linux/amd64\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testUndeclaredArg-3",
        "\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testUndeclaredArg-4",
        "\nARG DEBUG\nFROM scratch${DEBUG}\nCOPY Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testUndeclaredArg-5",
        "\nARG DEBUG\nFROM scra${DEBUG:-tch}\nCOPY Dockerfile .\n",
        warnings=[],
    ),
    LintCase(
        "testUndeclaredArg-6",
        '\nARG DEBUG=""\nFROM scratch${DEBUG-@bogus}\nCOPY Dockerfile .\n',
        warnings=[],
    ),
    LintCase(
        "testUndeclaredArg-7",
        "\nFROM --platform=$BULIDPLATFORM scratch\nCOPY Dockerfile .\n",
        warnings=[
            ("UndefinedArgInFrom", "FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)", 2),
        ],
    ),
    LintCase(
        "testUndeclaredArg-8",
        "\nARG MY_OS=alpine\nARG MY_ARCH=amd64\nFROM --platform=alpine/${MYARCH} alpine\nCOPY Dockerfile .\n",
        warnings=[
            ("UndefinedArgInFrom", "FROM argument 'MYARCH' is not declared (did you mean MY_ARCH?)", 4),
        ],
    ),
    LintCase(
        "testUndeclaredArg-9",
        "\nARG tag=latest\nFROM alpine:${tag}${version} AS b\nCOPY Dockerfile .\n",
        warnings=[
            ("UndefinedArgInFrom", "FROM argument 'version' is not declared", 3),
        ],
    ),
    LintCase(
        "testWorkdirRelativePath-1",
        "\nFROM scratch\nWORKDIR app/\n",
        warnings=[
            ("WorkdirRelativePath", 'Relative workdir "app/" can have unexpected results if the base image changes', 3),
        ],
    ),
    LintCase(
        "testWorkdirRelativePath-2",
        "\nFROM scratch AS a\nWORKDIR /app\n\nFROM a AS b\nWORKDIR subdir/\n",
        warnings=[],
    ),
    LintCase(
        "testWorkdirRelativePath-3",
        "\nFROM scratch\n# check=skip=WorkdirRelativePath\nWORKDIR app/\n",
        warnings=[],
    ),
    LintCase(
        "testUnmatchedVars-1",
        "\nFROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n",
        warnings=[],
    ),
    LintCase(
        "testUnmatchedVars-2",
        "\nFROM alpine AS base\nARG foo=Dockerfile\n\nFROM base\nCOPY $foo .\n",
        warnings=[],
    ),
    LintCase(
        "testUnmatchedVars-3",
        "\nFROM alpine\nRUN echo $PATH\n",
        warnings=[],
    ),
    LintCase(
        "testUnmatchedVars-4",
        "\nFROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n",
        warnings=[
            ("UndefinedVar", "Usage of undefined variable '$foo'", 3),
        ],
    ),
    LintCase(
        "testUnmatchedVars-5",
        "\nFROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nARG DIR_CONFIG=config/\nCOPY $DIR_ASSET .\n\t",
        warnings=[
            ("UndefinedVar", "Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)", 6),
        ],
    ),
    LintCase(
        "testUnmatchedVars-6",
        "\nFROM alpine\nENV PATH=$PAHT:/tmp/bin\n\t\t",
        warnings=[
            ("UndefinedVar", "Usage of undefined variable '$PAHT' (did you mean $PATH?)", 3),
        ],
    ),
    LintCase(
        "testMultipleInstructionsDisallowed-1",
        '\nFROM scratch\nENTRYPOINT ["/myapp"]\nENTRYPOINT ["/myotherapp"]\nCMD ["/myapp"]\nCMD ["/myotherapp"]\nHEALTHCHECK CMD ["/myapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n',
        warnings=[
            (
                "MultipleInstructionsDisallowed",
                "Multiple ENTRYPOINT instructions should not be used in the same stage because only the last one will be used",
                3,
            ),
            (
                "MultipleInstructionsDisallowed",
                "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
                5,
            ),
            (
                "MultipleInstructionsDisallowed",
                "Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used",
                7,
            ),
        ],
    ),
    LintCase(
        "testMultipleInstructionsDisallowed-2",
        '\nFROM scratch\nENTRYPOINT ["/myapp"]\nCMD ["/myapp"]\nHEALTHCHECK CMD ["/myapp"]\nCOPY <<EOF /a.txt\nHello, World!\nEOF\nENTRYPOINT ["/myotherapp"]\nCMD ["/myotherapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n',
        warnings=[
            (
                "MultipleInstructionsDisallowed",
                "Multiple ENTRYPOINT instructions should not be used in the same stage because only the last one will be used",
                3,
            ),
            (
                "MultipleInstructionsDisallowed",
                "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
                4,
            ),
            (
                "MultipleInstructionsDisallowed",
                "Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used",
                5,
            ),
        ],
    ),
    LintCase(
        "testMultipleInstructionsDisallowed-3",
        '\nFROM scratch AS a\nENTRYPOINT ["/myapp"]\nCMD ["/myapp"]\nHEALTHCHECK CMD ["/myapp"]\n\nFROM a AS b\nENTRYPOINT ["/myotherapp"]\nCMD ["/myotherapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n',
        warnings=[],
    ),
    LintCase(
        "testLegacyKeyValueFormat-1",
        "\nFROM scratch\nENV testkey value\nLABEL key value\n",
        warnings=[
            ("LegacyKeyValueFormat", '"ENV key=value" should be used instead of legacy "ENV key value" format', 3),
            ("LegacyKeyValueFormat", '"LABEL key=value" should be used instead of legacy "LABEL key value" format', 4),
        ],
    ),
    LintCase(
        "testLegacyKeyValueFormat-2",
        "\nFROM scratch\nENV testkey=value\nLABEL key=value\n",
        warnings=[],
    ),
    LintCase(
        "testLegacyKeyValueFormat-3",
        "\nFROM scratch AS a\n\nFROM a AS b\nENV testkey value\nLABEL key value\n\nFROM a AS c\n",
        warnings=[
            # BuildKit's test expects lines 3 and 4 here, only in its lint-subrequest variant, as in the case
            # above; the instructions stand on lines 5 and 6.
            ("LegacyKeyValueFormat", '"ENV key=value" should be used instead of legacy "ENV key value" format', 5),
            ("LegacyKeyValueFormat", '"LABEL key=value" should be used instead of legacy "LABEL key value" format', 6),
        ],
    ),
    LintCase(
        "testLegacyKeyValueFormat-4",
        "\nFROM scratch\n# check=skip=LegacyKeyValueFormat\nENV testkey value\n# check=skip=LegacyKeyValueFormat\nLABEL key value\n",
        warnings=[],
    ),
    LintCase(
        "testRedundantTargetPlatform-1",
        "\nFROM --platform=$TARGETPLATFORM scratch\n",
        warnings=[
            (
                "RedundantTargetPlatform",
                "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
                2,
            ),
        ],
    ),
    LintCase(
        "testRedundantTargetPlatform-2",
        "\nFROM --platform=${TARGETPLATFORM} scratch\n",
        warnings=[
            (
                "RedundantTargetPlatform",
                "Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior",
                2,
            ),
        ],
    ),
    LintCase(
        "testRedundantTargetPlatform-3",
        "\n# check=skip=RedundantTargetPlatform\nFROM --platform=$TARGETPLATFORM scratch\n",
        warnings=[],
    ),
    LintCase(
        "testInvalidDefaultArgInFrom-1",
        "\nARG VERSION\nFROM busybox:$VERSION\n",
        build_args={"VERSION": "latest"},
        warnings=[
            (
                "InvalidDefaultArgInFrom",
                "Default value for ARG busybox:$VERSION results in empty or invalid base image name",
                3,
            ),
        ],
    ),
    LintCase(
        "testInvalidDefaultArgInFrom-2",
        "\nARG IMAGE\nFROM $IMAGE\n",
        warnings=[
            ("InvalidDefaultArgInFrom", "Default value for ARG $IMAGE results in empty or invalid base image name", 3),
        ],
    ),
    LintCase(
        "testInvalidDefaultArgInFrom-3",
        '\nARG SFX="box:"\nFROM busy${SFX}\n',
        warnings=[
            (
                "InvalidDefaultArgInFrom",
                "Default value for ARG busy${SFX} results in empty or invalid base image name",
                3,
            ),
        ],
    ),
    LintCase(
        "testInvalidDefaultArgInFrom-4",
        '\nARG VERSION="latest"\nFROM alpine:${VERSION}\n',
        build_args={"VERSION": "latest"},
        warnings=[],
    ),
    LintCase(
        "testInvalidDefaultArgInFrom-5",
        '\nARG BUSYBOX_VARIANT=""\nFROM busybox:stable${BUSYBOX_VARIANT}\n',
        warnings=[],
    ),
    LintCase(
        "testInvalidDefaultArgInFrom-6",
        "\n\tARG BUSYBOX_VARIANT\n\tFROM busybox:stable${BUSYBOX_VARIANT}\n\t",
        warnings=[],
    ),
    LintCase(
        "testFromPlatformFlagConstDisallowed-1",
        "\nFROM --platform=linux/amd64 scratch\n",
        warnings=[
            ("FromPlatformFlagConstDisallowed", 'FROM --platform flag should not use constant value "linux/amd64"', 2),
        ],
    ),
    LintCase(
        "testFromPlatformFlagConstDisallowed-2",
        "\nFROM --platform=linux/amd64 scratch AS my_amd64_stage\n",
        warnings=[],
    ),
    LintCase(
        "testFromPlatformFlagConstDisallowed-3",
        "\nFROM --platform=linux/amd64 scratch AS linux\n",
        warnings=[],
    ),
    LintCase(
        "testExposeProtoCasing-1",
        "\nFROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n",
        warnings=[
            ("ExposeProtoCasing", "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase", 3),
            ("ExposeProtoCasing", "Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase", 3),
        ],
    ),
    LintCase(
        "testExposeInvalidFormat-1",
        "\nFROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n",
        warnings=[
            (
                "ExposeInvalidFormat",
                "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
                3,
            ),
            (
                "ExposeInvalidFormat",
                "EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'",
                3,
            ),
            (
                "ExposeInvalidFormat",
                "EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080'",
                3,
            ),
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_buildkit_lint_case(case: LintCase) -> None:
    found, failure = run_case(case)
    assert found == sorted(case.warnings, key=lambda warning: (warning[2], warning[1]))
    assert failure == case.error


def test_every_rule_of_the_brief_is_exercised() -> None:
    rules = {rule for case in CASES for rule, _, _ in case.warnings} | {"InvalidBaseImagePlatform"}
    assert rules == {
        "StageNameCasing",
        "FromAsCasing",
        "NoEmptyContinuation",
        "ConsistentInstructionCasing",
        "DuplicateStageName",
        "ReservedStageName",
        "JSONArgsRecommended",
        "MaintainerDeprecated",
        "UndefinedArgInFrom",
        "WorkdirRelativePath",
        "UndefinedVar",
        "MultipleInstructionsDisallowed",
        "LegacyKeyValueFormat",
        "InvalidBaseImagePlatform",
        "RedundantTargetPlatform",
        "SecretsUsedInArgOrEnv",
        "InvalidDefaultArgInFrom",
        "FromPlatformFlagConstDisallowed",
        "CopyIgnoredFile",
        "ExposeProtoCasing",
        "ExposeInvalidFormat",
    }


def test_invalid_base_image_platform() -> None:
    parsed = parse_dockerfile("FROM arm-image\nENV foo=bar\n")
    warnings, _ = lint_dockerfile(
        parsed, LintConfig(), image_facts=lambda name: ImageFacts(env=(("PATH", "/bin"),), platform="linux/arm64")
    )
    assert [(w.rule, w.message, w.line) for w in warnings] == [
        (
            "InvalidBaseImagePlatform",
            'Base image arm-image was pulled with platform "linux/arm64", expected "linux/amd64" for current build',
            1,
        )
    ]


def test_warning_carries_rule_url_and_description() -> None:
    warnings, _ = lint_dockerfile(parse_dockerfile("FROM scratch as base\n"), LintConfig())
    (warning,) = warnings
    assert warning.url == "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
    assert warning.description == "The 'as' keyword should match the case of the 'from' keyword"
    assert str(warning.location) == "Dockerfile:1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", LintConfig()),
        ("skip=all", LintConfig(skip_all=True)),
        ("skip=A, B;error=true", LintConfig(skip=frozenset({"A", "B"}), error=True)),
        (" error = 1 ", LintConfig(error=True)),
        ("experimental=all;skip=X", LintConfig(skip=frozenset({"X"}), experimental_all=True)),
    ],
)
def test_check_options(text: str, expected: LintConfig) -> None:
    assert parse_check_options(text) == expected


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("# check=skip\nFROM scratch\n", 'failed to parse check options: invalid check option "skip"'),
        ("# check=foo=bar\nFROM scratch\n", 'failed to parse check options: invalid check option "foo"'),
        (
            "# syntax=docker/dockerfile:1\n# check=error=maybe\nFROM scratch\n",
            (
                'failed to parse check options: failed to parse check option "error=maybe": strconv.ParseBool: '
                'parsing "maybe": invalid syntax'
            ),
        ),
    ],
)
def test_bad_check_directive_names_its_line(dockerfile: str, message: str) -> None:
    parsed = parse_dockerfile(dockerfile)
    with pytest.raises(DockerfileSyntaxError) as caught:
        file_config(parsed, {})
    assert caught.value.message == message
    line = dockerfile.count("\n", 0, dockerfile.index("# check")) + 1
    assert str(caught.value).startswith(f"Dockerfile:{line}: ")


def test_bad_check_build_arg() -> None:
    with pytest.raises(DockerfileSyntaxError, match="failed to parse BUILDKIT_DOCKERFILE_CHECK: invalid check"):
        file_config(parse_dockerfile("FROM scratch\n"), {"BUILDKIT_DOCKERFILE_CHECK": "nonsense"})


def test_comment_config_applies_to_one_instruction() -> None:
    base = LintConfig(error=True)
    merged = config_from_comments(base, ("unrelated", "check=skip=A,B // why", "check=skip=C"))
    assert merged == LintConfig(skip=frozenset({"A", "B"}), error=True)
    assert config_from_comments(base, ("check=bogus",)) == base
