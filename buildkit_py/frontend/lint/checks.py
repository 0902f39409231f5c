"""BuildKit's Dockerfile checks (`docker build --check`), run over a parsed Dockerfile without building it.

Where BuildKit checks while it dispatches (undefined variables, relative WORKDIR, repeated CMD, ...), this walks
the stages the same way with BuildKit's scoping: a stage starts from its base's environment (an earlier stage's,
its ARG values included, or the image's, with a default PATH), gains ARG values and ENV as it goes, and words are
expanded where BuildKit expands them. Base images are looked up with `image_facts`, which may answer None (then
the base is taken to set nothing but PATH).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ...context.dockerignore import IgnoreRules
from ...errors import BuildError, DockerfileError, SourceLocation
from ...image.config import DEFAULT_PATH
from ...image.manifest import oci_architecture
from ..convert import location_of, node_to_instruction
from ..instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from ..parser import Node, ParsedDockerfile
from ..platforms import PLATFORM, automatic_args
from ..shell import ShellLexer
from .config import LintConfig, config_from_comments
from .rules import RULES

__all__ = ["ImageFacts", "LintWarning", "lint_dockerfile"]


@dataclass(frozen=True)
class ImageFacts:
    """What the checks need of a base image."""

    env: tuple[tuple[str, str], ...] = ()
    shell: bool = False
    platform: str = PLATFORM


@dataclass(frozen=True)
class LintWarning:
    rule: str
    message: str
    location: SourceLocation

    @property
    def line(self) -> int:
        return self.location.start_line

    @property
    def url(self) -> str:
        return RULES[self.rule].url

    @property
    def description(self) -> str:
        return RULES[self.rule].description


ImageFactsLookup = Callable[[str], ImageFacts | None]
_RESERVED_STAGE_NAMES = frozenset({"context", "scratch"})
_SECRET = re.compile(r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)")
_SECRET_ALLOWED = re.compile(r"(?i)(?:_|^)(?:public|file|version)(?:_|$)")
_REFERENCE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
_PLATFORM_PART = re.compile(r"[A-Za-z0-9_.-]+")


def _levenshtein(left: str, right: str) -> int:
    previous = list(range(len(right) + 1))
    for i, left_char in enumerate(left, start=1):
        current = [i]
        for j, right_char in enumerate(right, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left_char != right_char)))
        previous = current
    return previous[-1]


def suggest(value: str, options: list[str], case_sensitive: bool = True) -> str:
    """BuildKit's `suggest.Search`: the closest option within edit distance 2, "" when none or an exact match."""
    wanted = value if case_sensitive else value.lower()
    match, best = "", 3
    for option in options:
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return ""
        distance = _levenshtein(wanted, candidate)
        if distance < best:
            match, best = (candidate if case_sensitive else _match_case(candidate, value)), distance
    return match


def _match_case(value: str, original: str) -> str:
    if original == original.lower():
        return value.lower()
    if original == original.upper():
        return value.upper()
    return value


def _written_keyword(node: Node) -> str:
    return node.original.strip().split(None, 1)[0] if node.original.strip() else node.keyword


@dataclass
class _Stage:
    name: str
    env: dict[str, str]
    args: set[str] = field(default_factory=set)
    workdir_set: bool = False
    shell: bool = False
    used_once: dict[str, SourceLocation] = field(default_factory=dict)


class _Linter:
    def __init__(
        self,
        parsed: ParsedDockerfile,
        config: LintConfig,
        build_args: Mapping[str, str],
        image_facts: ImageFactsLookup,
        ignore: IgnoreRules | None,
        target: str,
    ) -> None:
        self.parsed = parsed
        self.config = config
        self.build_args = build_args
        self.image_facts = image_facts
        self.ignore = ignore
        self.target = target
        self.lexer = ShellLexer(parsed.escape_token)
        self.warnings: list[LintWarning] = []
        self.stages: dict[str, _Stage] = {}

    def warn(self, config: LintConfig, rule: str, message: str, location: SourceLocation) -> None:
        if config.runs(rule, RULES[rule].experimental):
            self.warnings.append(LintWarning(rule, message, location))

    # --- the file ----------------------------------------------------------------------------------------------------

    def run(self) -> DockerfileError | None:
        """Lint every stage; the error that stops a build, if the file has one, comes back after the warnings
        found before it (BuildKit reports both)."""
        for line in self.parsed.empty_continuation_lines:
            location = SourceLocation(self.parsed.filename, line, line)
            self.warn(self.config, "NoEmptyContinuation", "Empty continuation line", location)
        nodes: list[tuple[Node, Instruction]] = []
        for node in self.parsed.nodes:
            self._node_rules(node)
            try:
                nodes.append((node, node_to_instruction(node, self.parsed.filename)))
            except DockerfileError as error:
                return error
        stage_nodes = self._split(nodes)
        self._stage_names(stage_nodes)
        self._casing(stage_nodes)
        meta: list[Arg] = []
        for _, instruction in nodes:
            if isinstance(instruction, From):
                break
            if isinstance(instruction, Arg):
                meta.append(instruction)
        global_args, declared = self._global_args(meta)
        self._default_base_names(stage_nodes, meta)
        for stage in stage_nodes:
            try:
                self._stage(stage, global_args, declared)
            except BuildError as error:
                return error if isinstance(error, DockerfileError) else None
        return None

    def _node_rules(self, node: Node) -> None:
        config = config_from_comments(self.config, node.comments)
        location = location_of(node, self.parsed.filename)
        if node.keyword == "maintainer":
            self.warn(
                config, "MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label", location
            )
        if node.keyword != "from" or len(node.args) != 3:
            return
        if node.args[2] != node.args[2].lower():
            self.warn(config, "StageNameCasing", f"Stage name '{node.args[2]}' should be lowercase", location)
        command, as_word = _written_keyword(node), node.args[1]
        if command in (command.lower(), command.upper()):
            expected = as_word.lower() if command == command.lower() else as_word.upper()
            if as_word != expected:
                self.warn(
                    config, "FromAsCasing", f"'{as_word}' and '{command}' keywords' casing do not match", location
                )

    @staticmethod
    def _split(nodes: list[tuple[Node, Instruction]]) -> list[list[tuple[Node, Instruction]]]:
        stages: list[list[tuple[Node, Instruction]]] = []
        for node, instruction in nodes:
            if isinstance(instruction, From):
                stages.append([])
            if stages:
                stages[-1].append((node, instruction))
        return stages

    def _stage_names(self, stages: list[list[tuple[Node, Instruction]]]) -> None:
        seen: set[str] = set()
        for stage in stages:
            node, source = stage[0]
            assert isinstance(source, From)
            name = source.stage_name
            if not name:
                continue
            config = config_from_comments(self.config, node.comments)
            if name in _RESERVED_STAGE_NAMES:
                message = f'Stage name should not use the same name as reserved stage "{name}"'
                self.warn(config, "ReservedStageName", message, source.location)
            if name in seen:
                message = f'Duplicate stage name "{name}", stage names should be unique'
                self.warn(config, "DuplicateStageName", message, source.location)
            seen.add(name)

    def _casing(self, stages: list[list[tuple[Node, Instruction]]]) -> None:
        words = [(node, _written_keyword(node)) for stage in stages for node, _ in stage]
        consistent = [word for _, word in words if word in (word.lower(), word.upper())]
        lower = sum(1 for word in consistent if word == word.lower())
        majority_lower = lower > len(consistent) - lower
        for node, word in words:
            casing = ""
            if majority_lower and word.lower() != word:
                casing = "lowercase"
            elif not majority_lower and word.upper() != word:
                casing = "uppercase"
            if casing:
                config = config_from_comments(self.config, node.comments)
                message = f"Command '{word}' should match the case of the command majority ({casing})"
                self.warn(config, "ConsistentInstructionCasing", message, location_of(node, self.parsed.filename))

    # --- global scope ------------------------------------------------------------------------------------------------

    def _global_args(self, meta: list[Arg]) -> tuple[dict[str, str], list[str]]:
        """The global ARG values (automatic platform ARGs first) and every name a FROM may use."""
        values = automatic_args(self.target, self.build_args)
        declared = list(values)
        for arg in meta:
            for key, default in arg.pairs:
                declared.append(key)
                if key in self.build_args:
                    values[key] = self.build_args[key]
                elif default is not None:
                    values[key] = self.lexer.process_word(default, values)
        return values, declared

    def _default_base_names(self, stages: list[list[tuple[Node, Instruction]]], meta: list[Arg]) -> None:
        """InvalidDefaultArgInFrom: each base name expanded with the global ARGs' defaults only."""
        values = automatic_args(self.target, {})
        for arg in meta:
            for key, default in arg.pairs:
                if default is not None:
                    values[key] = self.lexer.process_word(default, values)
        for stage in stages:
            node, source = stage[0]
            assert isinstance(source, From)
            name = self.lexer.process_word(source.base_name, values)
            if not _REFERENCE.fullmatch(name):
                config = config_from_comments(self.config, node.comments)
                message = f"Default value for ARG {source.base_name} results in empty or invalid base image name"
                self.warn(config, "InvalidDefaultArgInFrom", message, source.location)

    # --- one stage ---------------------------------------------------------------------------------------------------

    def _from_word(
        self, config: LintConfig, word: str, values: dict[str, str], declared: list[str], location: SourceLocation
    ) -> tuple[str, frozenset[str], frozenset[str]]:
        result, matched, unmatched = self.lexer.process_word_with_matches(word, values)
        for name in sorted(unmatched - set(declared)):
            hint = suggest(name, declared)
            message = f"FROM argument '{name}' is not declared" + (f" (did you mean {hint}?)" if hint else "")
            self.warn(config, "UndefinedArgInFrom", message, location)
        return result, matched, unmatched

    def _stage(self, stage: list[tuple[Node, Instruction]], global_args: dict[str, str], declared: list[str]) -> None:
        node, source = stage[0]
        assert isinstance(source, From)
        config = config_from_comments(self.config, node.comments)
        base_name, _, _ = self._from_word(config, source.base_name, global_args, declared, source.location)
        if source.platform:
            self._platform(config, source, global_args, declared)
        state = self._begin(source, base_name, config)
        for command_node, instruction in stage[1:]:
            command_config = config_from_comments(self.config, command_node.comments)
            if isinstance(instruction, Env | Label) and command_node.args[2:3] == ("",):
                message = (
                    f'"{instruction.keyword} key=value" should be used instead of legacy "{instruction.keyword} key '
                    'value" format'
                )
                self.warn(command_config, "LegacyKeyValueFormat", message, instruction.location)
            self._instruction(state, command_config, instruction)
        if source.stage_name:
            self.stages[source.stage_name] = state

    def _platform(self, config: LintConfig, source: From, global_args: dict[str, str], declared: list[str]) -> None:
        result, matched, unmatched = self._from_word(config, source.platform, global_args, declared, source.location)
        if matched == {"TARGETPLATFORM"} and not unmatched and result == global_args.get("TARGETPLATFORM"):
            message = (
                f"Setting platform to predefined {source.platform} in FROM is redundant as this is the default behavior"
            )
            self.warn(config, "RedundantTargetPlatform", message, source.location)
        if matched or unmatched:
            return
        parts = result.split("/")
        if not 1 <= len(parts) <= 3 or not all(_PLATFORM_PART.fullmatch(part) for part in parts):
            return
        os_name = parts[0].lower() if len(parts) > 1 else "linux"
        architecture, _ = oci_architecture((parts[1] if len(parts) > 1 else parts[0]).lower())
        if os_name in source.stage_name or architecture in source.stage_name:
            return
        message = f'FROM --platform flag should not use constant value "{result}"'
        self.warn(config, "FromPlatformFlagConstDisallowed", message, source.location)

    def _begin(self, source: From, base_name: str, config: LintConfig) -> _Stage:
        parent = self.stages.get(base_name.lower())
        if parent is not None:
            return _Stage(
                name=source.stage_name,
                env=dict(parent.env),
                args=set(parent.args),
                workdir_set=parent.workdir_set,
                shell=parent.shell,
            )
        facts = ImageFacts() if base_name == "scratch" else self.image_facts(base_name) or ImageFacts()
        env = dict(facts.env)
        env.setdefault("PATH", DEFAULT_PATH)
        if facts.platform != PLATFORM:
            message = (
                f'Base image {base_name} was pulled with platform "{facts.platform}", expected "{PLATFORM}" for '
                "current build"
            )
            self.warn(config, "InvalidBaseImagePlatform", message, source.location)
        return _Stage(name=source.stage_name, env=env, shell=facts.shell)

    def _expand(self, state: _Stage, config: LintConfig, instruction: Instruction, words: list[str]) -> list[str]:
        results = []
        unmatched: set[str] = set()
        for word in words:
            result, _, missing = self.lexer.process_word_with_matches(word, state.env)
            results.append(result)
            unmatched |= missing
        options = list(state.env)
        for name in sorted(unmatched - state.args):
            hint = suggest(name, options)
            message = f"Usage of undefined variable '${name}'" + (f" (did you mean ${hint}?)" if hint else "")
            self.warn(config, "UndefinedVar", message, instruction.location)
        return results

    def _instruction(self, state: _Stage, config: LintConfig, instruction: Instruction) -> None:
        if isinstance(instruction, Arg):
            self._arg(state, config, instruction)
        elif isinstance(instruction, Env | Label):
            self._key_values(state, config, instruction)
        elif isinstance(instruction, Copy | Add):
            self._copy(state, config, instruction)
        elif isinstance(instruction, Workdir):
            path = self._expand(state, config, instruction, [instruction.path])[0]
            if not state.workdir_set and not posixpath.isabs(path):
                message = f'Relative workdir "{path}" can have unexpected results if the base image changes'
                self.warn(config, "WorkdirRelativePath", message, instruction.location)
            state.workdir_set = True
        elif isinstance(instruction, User):
            self._expand(state, config, instruction, [instruction.user])
        elif isinstance(instruction, Volume):
            self._expand(state, config, instruction, list(instruction.paths))
        elif isinstance(instruction, StopSignal):
            self._expand(state, config, instruction, [instruction.signal])
        elif isinstance(instruction, Expose):
            self._expose(state, config, instruction)
        elif isinstance(instruction, Shell):
            state.shell = True
        elif isinstance(instruction, Cmd | Entrypoint | Healthcheck):
            self._used_once(state, config, instruction)
            if isinstance(instruction, Cmd | Entrypoint) and instruction.prepend_shell and not state.shell:
                message = (
                    f"JSON arguments recommended for {instruction.keyword} to prevent unintended behavior related "
                    "to OS signals"
                )
                self.warn(config, "JSONArgsRecommended", message, instruction.location)

    def _used_once(self, state: _Stage, config: LintConfig, instruction: Instruction) -> None:
        keyword = instruction.keyword
        previous = state.used_once.get(keyword)
        if previous is not None:
            message = (
                f"Multiple {keyword} instructions should not be used in the same stage because only the last one "
                "will be used"
            )
            self.warn(config, "MultipleInstructionsDisallowed", message, previous)
        state.used_once[keyword] = instruction.location

    def _secret(self, config: LintConfig, keyword: str, key: str, location: SourceLocation) -> None:
        if _SECRET.search(key) and not _SECRET_ALLOWED.search(key):
            message = f'Do not use ARG or ENV instructions for sensitive data ({keyword} "{key}")'
            self.warn(config, "SecretsUsedInArgOrEnv", message, location)

    def _arg(self, state: _Stage, config: LintConfig, arg: Arg) -> None:
        for key, default in arg.pairs:
            self._secret(config, "ARG", key, arg.location)
            value: str | None = None
            if key in self.build_args:
                value = self.build_args[key]
            elif default is not None:
                value = self._expand(state, config, arg, [default])[0]
            if value is not None:
                state.env[key] = value
            state.args.add(key)

    def _key_values(self, state: _Stage, config: LintConfig, instruction: Env | Label) -> None:
        raw_words = [word for pair in instruction.pairs for word in pair]
        expanded = self._expand(state, config, instruction, raw_words)
        for index in range(0, len(expanded), 2):
            key = expanded[index]
            if isinstance(instruction, Env):
                self._secret(config, "ENV", key, instruction.location)
                state.env[key] = expanded[index + 1]

    def _copy(self, state: _Stage, config: LintConfig, instruction: Copy | Add) -> None:
        words = [*instruction.sources, instruction.dest, *([instruction.chown] if instruction.chown else [])]
        sources = self._expand(state, config, instruction, words)[: len(instruction.sources)]
        if isinstance(instruction, Copy) and instruction.from_:
            return
        rules = self.ignore
        if not rules or any(pattern.startswith("!") for pattern in rules.patterns):
            return
        verb = "Add" if isinstance(instruction, Add) else "Copy"
        for source in sources:
            cleaned = posixpath.normpath(source) if source else "."
            if cleaned in (".", "/"):
                # The context's root is excluded only by a pattern that excludes everything in it.
                if any(pattern in ("*", "**", "**/*") for pattern in rules.patterns):
                    message = f'Attempting to {verb} file "{cleaned}" that is excluded by .dockerignore'
                    self.warn(config, "CopyIgnoredFile", message, instruction.location)
                continue
            if rules.excludes(cleaned.lstrip("/")):
                message = f'Attempting to {verb} file "{cleaned}" that is excluded by .dockerignore'
                self.warn(config, "CopyIgnoredFile", message, instruction.location)

    def _expose(self, state: _Stage, config: LintConfig, expose: Expose) -> None:
        ports = [port for word in expose.ports for port in self.lexer.process_words(word, state.env)]
        for raw in ports:
            parts = raw.split(":")
            ip, host_port = "", ""
            if len(parts) == 2:
                host_port = parts[0]
            elif len(parts) >= 3:
                ip, host_port = ":".join(parts[:-2]), parts[-2]
            _, _, proto = parts[-1].partition("/")
            if proto != proto.lower():
                message = f"Defined protocol '{raw}' in EXPOSE instruction should be lowercase"
                self.warn(config, "ExposeProtoCasing", message, expose.location)
            if ip or host_port:
                message = f"EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"
                self.warn(config, "ExposeInvalidFormat", message, expose.location)


def lint_dockerfile(
    parsed: ParsedDockerfile,
    config: LintConfig,
    *,
    build_args: Mapping[str, str] | None = None,
    image_facts: ImageFactsLookup | None = None,
    ignore: IgnoreRules | None = None,
    target: str = "",
) -> tuple[tuple[LintWarning, ...], DockerfileError | None]:
    """The warnings of BuildKit's checks, in line order without repeats, and the error that would stop a build
    of this Dockerfile before any step runs, if there is one."""
    linter = _Linter(parsed, config, build_args or {}, image_facts or (lambda name: None), ignore, target)
    error = linter.run()
    unique = dict.fromkeys(linter.warnings)
    ordered = sorted(unique, key=lambda warning: (warning.line, warning.message))
    return tuple(ordered), error
