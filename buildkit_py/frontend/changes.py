"""Docker's `--change` strings (`docker import --change`, `docker commit --change`): Dockerfile instructions applied
to an image's config with the build's own dispatchers (moby's `BuildFromConfig`).

The strings are joined by newlines and parsed as one Dockerfile, so continuations and a `# escape=` directive work
as they do there. Every instruction is checked against the set Docker 20.10 allows before any is converted, and all
are converted before any is applied; words are expanded against the config's ENV as it stands at each instruction.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InstructionError
from ..image.config import ContainerConfig
from .convert import location_of, node_to_instruction
from .dispatch import apply_instruction, expand_instruction
from .parser import parse_dockerfile
from .shell import ShellLexer

__all__ = ["ALLOWED_CHANGES", "CHANGE_SOURCE", "apply_changes"]

# moby's validCommitCommands (checked against `docker import --change` of Docker 20.10: STOPSIGNAL, SHELL, ARG,
# MAINTAINER, RUN, COPY, ADD and FROM are refused).
ALLOWED_CHANGES = frozenset(
    {"cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "user", "volume", "workdir"}
)
# The file name errors show for a change, as `--change:2: ENV: ENV names can not be blank`.
CHANGE_SOURCE = "--change"


def apply_changes(config: ContainerConfig, changes: Sequence[str]) -> ContainerConfig:
    """`config` with each change applied in order. Raises DockerfileSyntaxError / InstructionError / ExpansionError,
    with Docker's message, for a change Docker refuses."""
    if not changes:
        return config
    parsed = parse_dockerfile("\n".join(changes), CHANGE_SOURCE)
    for node in parsed.nodes:
        if node.keyword not in ALLOWED_CHANGES:
            raise InstructionError(f"{node.keyword} is not a valid change command", location_of(node, CHANGE_SOURCE))
    instructions = [node_to_instruction(node, CHANGE_SOURCE) for node in parsed.nodes]
    lexer = ShellLexer(parsed.escape_token)
    cmd_set = False
    for instruction in instructions:
        expanded = expand_instruction(instruction, lexer, config.env_map())
        change = apply_instruction(config, expanded, cmd_set=cmd_set)
        config, cmd_set = change.config, change.cmd_set
    return config
