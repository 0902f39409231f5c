"""Stages of instructions to a BuildPlan: BuildKit's `dockerfile2llb`, with Docker 20.10's classic-builder semantics.

RUN, COPY, ADD and WORKDIR become ops here; what an instruction does to the image config is `dispatch.py`'s, shared
with `import --change`.

Facts checked against `DOCKER_BUILDKIT=0 docker build` (Docker 20.10.24):
- every stage's config gets PATH=DEFAULT_PATH appended when its base config has no PATH, FROM scratch included;
- ARGs before the first FROM are visible only in FROM lines and in a stage that redeclares them (`ARG NAME`); a
  stage ARG takes its value from --build-arg, else its own default, else the global default; a child stage
  (`FROM stage`) inherits ENV but no ARG;
- one environment expands a whole instruction: `ENV a=2 b=$a` gives b the old a;
- ENV wins over ARG; a RUN sees the stage's ARGs with a value that ENV does not override, and the predefined proxy
  ARGs given with --build-arg, none of which reach the image's Env;
- COPY --chown is expanded, COPY --from is not; --from is a stage name (any case), a stage index, else an image;
- WORKDIR creates its directory owned by root even after USER, and is relative to the previous WORKDIR;
- ENTRYPOINT clears a CMD inherited from the base, not one set earlier in the same stage;
- EXPOSE records each port of a range, the protocol lowercased (default tcp);
- ONBUILD triggers of the base run right after FROM and are cleared from the new config; MAINTAINER sets the
  image's Author; FROM by index is an image name; --target is matched without case.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ..digest import Digest
from ..errors import BuildError, DockerfileError, ExpansionError, InstructionError, SourceLocation
from ..gostring import go_clean, go_quote
from ..image.config import DEFAULT_PATH, ContainerConfig, ImageConfig
from ..solver.graph import BuildGraph
from ..solver.ops import (
    Chown,
    ContextSource,
    CopyAction,
    ExecMount,
    ExecOp,
    FileOp,
    ImageSource,
    MkdirAction,
    OpMeta,
    ScratchSource,
    SshSpec,
)
from .convert import node_to_instruction, parse_stages, trigger_error
from .dispatch import DEFAULT_SHELL, apply_instruction, dispatch_workdir, expand_instruction, with_shell
from .instructions import (
    Add,
    Arg,
    Copy,
    From,
    Instruction,
    Run,
    Stage,
    Workdir,
)
from .parser import ParsedDockerfile, parse_dockerfile
from .plan import BuildPlan, HistoryStep, ImageResolver
from .runmount import MountError, RunMount, exec_mount, parse_mount
from .shell import ShellLexer

__all__ = ["DEFAULT_SHELL", "PREDEFINED_ARGS", "SUPPORTED_PLATFORMS", "dockerfile_to_plan"]

# Docker 20.10's builtinAllowedBuildArgs: usable without ARG, never in the history unless declared.
PREDEFINED_ARGS = frozenset(
    {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy"}
)
SUPPORTED_PLATFORMS = frozenset({"linux/amd64"})
_URL_PREFIXES = ("http://", "https://", "git@", "git://")
_I = TypeVar("_I", bound=Instruction)


@dataclass(frozen=True)
class _StageResult:
    name: str
    index: int
    rootfs: Digest
    config: ContainerConfig
    base: ImageConfig
    steps: tuple[HistoryStep, ...]
    author: str


@dataclass
class _StageState:
    """What one stage's instructions change as they are dispatched."""

    name: str
    index: int
    rootfs: Digest
    config: ContainerConfig
    base: ImageConfig
    steps: list[HistoryStep]
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False
    author: str = ""


def dockerfile_to_plan(
    parsed: ParsedDockerfile,
    *,
    context: ContextSource,
    build_args: Mapping[str, str],
    target: str | None,
    resolve_image: ImageResolver,
    network: str = "default",
    entitlements: frozenset[str] = frozenset(),
) -> BuildPlan:
    """Turn a parsed Dockerfile into the op graph of the `target` stage (default: the last) and its image config.

    `entitlements` are what the user allowed with `--allow`: `network.host` for `RUN --network=host`,
    `security.insecure` for `RUN --security=insecure`. Raises InstructionError / ExpansionError (with the
    instruction's location) for what Docker refuses."""
    return _Converter(parsed, context, build_args, resolve_image, network, entitlements).plan(target)


class _Converter:
    def __init__(
        self,
        parsed: ParsedDockerfile,
        context: ContextSource,
        build_args: Mapping[str, str],
        resolve_image: ImageResolver,
        network: str,
        entitlements: frozenset[str],
    ) -> None:
        self.parsed = parsed
        self.entitlements = entitlements
        self.context = context
        self.build_args = dict(build_args)
        self.resolve_image = resolve_image
        self.network = network
        self.lexer = ShellLexer(parsed.escape_token)
        self.graph = BuildGraph()
        self.meta_args: dict[str, str | None] = {}
        self.referenced: set[str] = set()
        self.results: list[_StageResult] = []
        self.stage_names: frozenset[str] = frozenset()
        self.multi_stage = False

    # --- the whole file ----------------------------------------------------------------------------------------------

    def plan(self, target: str | None) -> BuildPlan:
        meta_args, stages = parse_stages(self.parsed)
        self.stage_names = frozenset(stage.name for stage in stages if stage.name)
        self.multi_stage = len(stages) > 1
        _check_stage_names(stages)
        last = _target_index(stages, target)
        for meta in meta_args:
            self._meta_arg(meta)
        for stage in stages[: last + 1]:
            self.results.append(self._stage(stage))
        final = self.results[-1]
        graph = self.graph.subgraph_for([final.rootfs])
        given = set(self.build_args)
        return BuildPlan(
            graph=graph,
            target=final.rootfs,
            config=final.config,
            base=final.base,
            steps=final.steps,
            stage_name=final.name,
            used_build_args=frozenset(given & self.referenced),
            unused_build_args=frozenset(given - self.referenced - PREDEFINED_ARGS),
            stage_targets={
                result.name or str(result.index): result.rootfs for result in self.results if result.rootfs in graph
            },
            author=final.author,
        )

    def _meta_arg(self, arg: Arg) -> None:
        expanded = self._expand(arg, self._meta_env())
        for key, value in expanded.pairs:
            self.meta_args[key] = value
            self.referenced.add(key)

    def _meta_env(self) -> dict[str, str]:
        env = {key: value for key, value in self.build_args.items() if key in PREDEFINED_ARGS}
        for key, default in self.meta_args.items():
            value = self.build_args.get(key, default)
            if value is not None:
                env[key] = value
        return env

    # --- one stage ---------------------------------------------------------------------------------------------------

    def _stage(self, stage: Stage) -> _StageResult:
        source = self._expand(stage.source, self._meta_env())
        location = source.location
        if not source.base_name:
            raise InstructionError(f"base name ({stage.source.base_name}) should not be blank", location, "FROM")
        if source.platform and source.platform.lower() not in SUPPORTED_PLATFORMS:
            raise InstructionError(
                f"platform {go_quote(source.platform)} is not supported: only linux/amd64 images are built",
                location,
                "FROM",
            )
        state = self._begin(stage, source)
        triggers = state.config.on_build
        state.config = replace(state.config, on_build=())
        instructions = [*self._triggers(triggers, location), *stage.commands]
        total = 1 + len(instructions)
        for number, instruction in enumerate(instructions, start=2):
            self._dispatch(state, instruction, self._meta(state, number, total, instruction))
        return _StageResult(
            name=state.name,
            index=state.index,
            rootfs=state.rootfs,
            config=state.config,
            base=state.base,
            steps=tuple(state.steps),
            author=state.author,
        )

    def _begin(self, stage: Stage, source: From) -> _StageState:
        total = 1 + len(stage.commands)
        meta = OpMeta(
            name=f"{self._prefix(stage.name, stage.index, 1, total)} FROM {source.base_name}",
            stage=stage.name,
            location=source.location,
        )
        parent = self._find_stage(source.base_name)
        if parent is not None:
            rootfs, config, base = parent.rootfs, parent.config, parent.base
            steps = list(parent.steps)
        elif source.base_name == "scratch":
            rootfs, config, base, steps = self.graph.add(ScratchSource(), meta), ContainerConfig(), ImageConfig(), []
        else:
            try:
                resolved = self.resolve_image(source.base_name)
            except DockerfileError:
                raise
            except BuildError as error:
                raise InstructionError(str(error), source.location, "FROM") from None
            rootfs = self.graph.add(ImageSource(ref=resolved.ref, image_id=resolved.image_id), meta)
            config, base, steps = resolved.config.config, resolved.config, []
        if "PATH" not in config.env_map():
            config = replace(config, env=(*config.env, f"PATH={DEFAULT_PATH}"))
        return _StageState(name=stage.name, index=stage.index, rootfs=rootfs, config=config, base=base, steps=steps)

    def _find_stage(self, name: str) -> _StageResult | None:
        lowered = name.lower()
        return next((result for result in self.results if result.name and result.name == lowered), None)

    def _triggers(self, triggers: tuple[str, ...], location: SourceLocation) -> list[Instruction]:
        """The base's ONBUILD triggers, parsed like Dockerfile lines and placed at the FROM line."""
        instructions: list[Instruction] = []
        for trigger in triggers:
            trigger_location = replace(location, text=trigger)
            try:
                nodes = parse_dockerfile(trigger, location.file).nodes
            except DockerfileError as error:
                raise InstructionError(error.message, trigger_location, "ONBUILD") from None
            for node in nodes:
                refused = trigger_error(node.keyword, trigger_location)
                if refused is not None:
                    raise refused
                placed = replace(node, start_line=location.start_line, end_line=location.end_line)
                instructions.append(node_to_instruction(placed, location.file))
        return instructions

    def _prefix(self, name: str, index: int, number: int, total: int) -> str:
        if not self.multi_stage:
            return f"[{number}/{total}]"
        return f"[{name or f'stage-{index}'} {number}/{total}]"

    def _meta(self, state: _StageState, number: int, total: int, instruction: Instruction) -> OpMeta:
        text = " ".join(instruction.location.text.split("\n"))
        return OpMeta(
            name=f"{self._prefix(state.name, state.index, number, total)} {text}",
            stage=state.name,
            location=instruction.location,
        )

    # --- environments ------------------------------------------------------------------------------------------------

    def _arg_value(self, key: str, default: str | None) -> str | None:
        if key in self.build_args:
            return self.build_args[key]
        if default is not None:
            return default
        return self.meta_args.get(key)

    def _args_in_scope(self, state: _StageState) -> dict[str, str]:
        values = {key: value for key, value in self.build_args.items() if key in PREDEFINED_ARGS}
        for key, default in state.args.items():
            value = self._arg_value(key, default)
            if value is not None:
                values[key] = value
        return values

    def _env(self, state: _StageState) -> dict[str, str]:
        return {**self._args_in_scope(state), **state.config.env_map()}

    def _run_env(self, state: _StageState) -> tuple[str, ...]:
        config_env = state.config.env_map()
        extra = sorted(f"{key}={value}" for key, value in self._args_in_scope(state).items() if key not in config_env)
        env = (*state.config.env, *extra)
        if "PATH" not in config_env:
            env = (*env, f"PATH={DEFAULT_PATH}")
        return env

    def _expand(self, instruction: _I, env: Mapping[str, str]) -> _I:
        return expand_instruction(instruction, self.lexer, env)

    # --- instructions ------------------------------------------------------------------------------------------------

    def _dispatch(self, state: _StageState, instruction: Instruction, meta: OpMeta) -> None:
        if isinstance(instruction, Run):
            self._run(state, instruction, meta)
        elif isinstance(instruction, Copy | Add):
            self._copy(state, instruction, meta)
        elif isinstance(instruction, Workdir):
            self._workdir(state, instruction, meta)
        else:
            created_by = self._metadata(state, instruction)
            state.steps.append(HistoryStep(created_by=created_by, location=instruction.location))

    def _fail(self, instruction: Instruction, message: str) -> InstructionError:
        return InstructionError(message, instruction.location, instruction.keyword)

    def _metadata(self, state: _StageState, instruction: Instruction) -> str:
        """Apply a metadata-only instruction to the config; return its history text."""
        expanded = self._expand(instruction, self._env(state))
        change = apply_instruction(state.config, expanded, cmd_set=state.cmd_set)
        if isinstance(expanded, Arg):
            for name, default in expanded.pairs:
                state.args[name] = default
                self.referenced.add(name)
        state.config = change.config
        state.cmd_set = change.cmd_set
        if change.author is not None:
            state.author = change.author
        return change.created_by

    def _entitled(self, run: Run, entitlement: str) -> None:
        if entitlement not in self.entitlements:
            raise self._fail(run, f"{entitlement} is not allowed: build with --allow {entitlement} to grant it")

    def _run(self, state: _StageState, run: Run, meta: OpMeta) -> None:
        if run.network == "host":
            self._entitled(run, "network.host")
        if run.security == "insecure":
            self._entitled(run, "security.insecure")
        args = with_shell(state.config, run.command, run.prepend_shell)
        env = self._run_env(state)
        mounts = self._run_mounts(state, run)
        if any(isinstance(mount, SshSpec) for mount in mounts) and not any(
            entry.startswith("SSH_AUTH_SOCK=") for entry in env
        ):
            first = next(mount for mount in mounts if isinstance(mount, SshSpec))
            env = (*env, f"SSH_AUTH_SOCK={first.target}")
        op = ExecOp(
            rootfs=state.rootfs,
            args=args,
            env=env,
            cwd=state.config.working_dir or "/",
            user=state.config.user,
            network=run.network or self.network,
            security=run.security or "sandbox",
            volumes=state.config.volumes,
            mounts=mounts,
        )
        parent = state.rootfs
        state.rootfs = self.graph.add(op, meta)
        env_map = dict(entry.partition("=")[::2] for entry in env)
        declared = [f"{key}={env_map.get(key, value or '')}" for key, value in state.args.items()]
        prefix = [f"|{len(declared)}", *declared] if declared else []
        created_by = "RUN " + " ".join([*prefix, *args]) + " # buildkit"
        state.steps.append(HistoryStep(created_by=created_by, op=state.rootfs, parent=parent, location=meta.location))

    def _run_mounts(self, state: _StageState, run: Run) -> tuple[ExecMount, ...]:
        """RUN's `--mount`s, expanded with the step's ARGs and ENV and checked, as ops see them."""
        env = self._env(state)
        mounts: list[ExecMount] = []
        for text in run.mounts:
            try:
                mount = parse_mount(text, lambda word: self.lexer.process_word(word, env))
                source = self._mount_source(state, run, mount)
                ssh_index = sum(1 for earlier in mounts if isinstance(earlier, SshSpec))
                mounts.append(exec_mount(mount, workdir=state.config.working_dir, source=source, ssh_index=ssh_index))
            except MountError as error:
                raise self._fail(run, str(error)) from None
            except ExpansionError as error:
                raise ExpansionError(error.message, run.location, run.keyword) from None
        return tuple(mounts)

    def _mount_source(self, state: _StageState, run: Run, mount: RunMount) -> Digest | None:
        """What a bind or cache mount reads: `from` (a stage, a stage index or an image), else the context."""
        if mount.type not in ("bind", "cache") or (mount.type == "cache" and not mount.from_):
            return None
        if mount.from_ and self._find_stage(mount.from_) is None and mount.from_.lower() in self.stage_names:
            raise MountError(
                f'cannot mount from stage "{mount.from_}" to "{mount.target}", stage needs to be defined before '
                "current command"
            )
        return self._copy_source(state, run, mount.from_)[0]

    def _workdir(self, state: _StageState, workdir: Workdir, meta: OpMeta) -> None:
        change = dispatch_workdir(state.config, self._expand(workdir, self._env(state)))
        # Docker cleans the path when it creates the step's container to make the directory.
        new = go_clean(change.config.working_dir)
        state.config = replace(change.config, working_dir=new)
        parent = state.rootfs
        # Docker's classic builder creates the directory owned by root, whatever USER says.
        state.rootfs = self.graph.add(FileOp(base=parent, actions=(MkdirAction(path=new),)), meta)
        state.steps.append(
            HistoryStep(created_by=f"WORKDIR {new}", op=state.rootfs, parent=parent, location=meta.location)
        )

    def _copy(self, state: _StageState, instruction: Copy | Add, meta: OpMeta) -> None:
        expanded = self._expand(instruction, self._env(state))
        keyword = instruction.keyword
        for source_path in expanded.sources:
            if source_path.startswith(_URL_PREFIXES):
                if isinstance(instruction, Add):
                    raise self._fail(instruction, "ADD from a URL is not supported yet")
                raise self._fail(instruction, "Source can't be a URL for COPY")
        dest_is_dir = expanded.dest.endswith("/")
        if len(expanded.sources) > 1 and not dest_is_dir:
            raise self._fail(
                instruction,
                f"When using {keyword} with more than one source file, the destination must be a directory and end "
                "with a /",
            )
        dest = _copy_dest(expanded.dest, state.config.working_dir)
        from_ = expanded.from_ if isinstance(expanded, Copy) else ""
        source, from_context = self._copy_source(state, instruction, from_)
        chown = _chown(expanded.chown)
        if chown is None and from_context:
            chown = Chown("0", "0")  # Docker's classic builder gives context files to root (and so drops setuid)
        several = len(expanded.sources) > 1
        actions = tuple(
            CopyAction(
                source=source,
                src=source_path,
                dest=dest,
                dest_is_dir=dest_is_dir,
                attempt_unpack=isinstance(instruction, Add) and from_context,
                chown=chown,
                exclude=self.context.exclude if from_context else (),
                # Docker counts matches per instruction: one source may match nothing when another matches.
                allow_empty_wildcard=several,
            )
            for source_path in expanded.sources
        )
        parent = state.rootfs
        state.rootfs = self.graph.add(FileOp(base=parent, actions=actions), meta)
        created_by = f"{keyword} {' '.join(expanded.sources)} {expanded.dest} # buildkit"
        state.steps.append(HistoryStep(created_by=created_by, op=state.rootfs, parent=parent, location=meta.location))

    def _copy_source(self, state: _StageState, instruction: Instruction, from_: str) -> tuple[Digest, bool]:
        if not from_:
            return self.graph.add(self.context, OpMeta(name=f"load build context {self.context.name}")), True
        stage = self._find_stage(from_)
        if stage is not None:
            return stage.rootfs, False
        if re.fullmatch(r"[+-]?[0-9]+", from_):
            index = int(from_)
            if 0 <= index < len(self.results):
                return self.results[index].rootfs, False
            raise self._fail(instruction, f"invalid from flag value {from_}: index out of bounds")
        try:
            resolved = self.resolve_image(from_)
        except BuildError as error:
            message = error.message if isinstance(error, DockerfileError) else str(error)
            raise self._fail(instruction, f"invalid from flag value {from_}: {message}") from None
        op = ImageSource(ref=resolved.ref, image_id=resolved.image_id)
        return self.graph.add(op, OpMeta(name=f"FROM {from_}", stage=state.name, location=instruction.location)), False


def _check_stage_names(stages: tuple[Stage, ...]) -> None:
    seen: set[str] = set()
    for stage in stages:
        if stage.name and stage.name in seen:
            raise InstructionError(f"{stage.name} stage name already used", stage.source.location, "FROM")
        seen.add(stage.name)


def _target_index(stages: tuple[Stage, ...], target: str | None) -> int:
    if not target:
        return len(stages) - 1
    lowered = target.lower()
    for stage in stages:
        if stage.name == lowered:
            return stage.index
    names = ", ".join(stage.name for stage in stages if stage.name) or "none has a name"
    raise InstructionError(f"failed to reach build target {target} in Dockerfile (stages: {names})")


def _copy_dest(dest: str, working_dir: str) -> str:
    """Docker's normalizeDest: relative to WORKDIR, cleaned, a trailing slash kept."""
    ends_in_slash = dest.endswith("/")
    cleaned = go_clean(dest if posixpath.isabs(dest) else posixpath.join("/", working_dir or "/", dest))
    return cleaned + "/" if ends_in_slash and cleaned != "/" else cleaned


def _chown(text: str) -> Chown | None:
    if not text:
        return None
    user, _, group = text.partition(":")
    return Chown(user=user, group=group)
