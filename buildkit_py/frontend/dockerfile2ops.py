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
- BuildKit's COPY/ADD flags (which the classic builder refuses) follow BuildKit: `--chmod` is expanded, `--link`
  copies onto an empty tree and stacks that layer on the stage (ignored with `--chmod`, as BuildKit does),
  `--parents` keeps the parent directories below a `/./` pivot, `--exclude` leaves out matching paths, ADD
  downloads an http(s) URL (never unpacked) and clones a git URL, and `--checksum` pins either;
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
    HttpSource,
    ImageSource,
    MergeOp,
    MkdirAction,
    OpMeta,
    ScratchSource,
    SshSpec,
)
from .convert import node_to_instruction, parse_stages, trigger_error
from .copyflags import (
    HttpUrl,
    add_checksum,
    classify_source,
    file_mode,
    git_source,
    names_working_dir,
    numeric_chown,
    split_parents,
    url_filename,
)
from .dispatch import DEFAULT_SHELL, apply_instruction, dispatch_workdir, expand_instruction, with_shell
from .gitref import GitRef
from .heredoc import HeredocError, inline_sources, run_command
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
from .named_contexts import ImageContext, LocalContext, NamedContext, find_context
from .parser import ParsedDockerfile, parse_dockerfile
from .plan import BuildPlan, HistoryStep, ImageResolver
from .platforms import AUTOMATIC_ARGS, automatic_args, normalize_platform
from .runmount import MountError, RunMount, exec_mount, parse_mount
from .shell import ShellLexer

__all__ = ["DEFAULT_SHELL", "PREDEFINED_ARGS", "SUPPORTED_PLATFORMS", "dockerfile_to_plan"]

# BuildKit's proxy build args (Docker 20.10's builtinAllowedBuildArgs and ALL_PROXY): usable without ARG, given to
# RUN steps, never in the history or a cache key unless declared.
PREDEFINED_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)
# Build args that configure the frontend itself and so are never reported as unused.
FRONTEND_ARGS = frozenset({"BUILDKIT_SYNTAX", "BUILDKIT_DOCKERFILE_CHECK"})
SUPPORTED_PLATFORMS = frozenset({"linux/amd64"})
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
    build_contexts: Mapping[str, NamedContext] | None = None,
    labels: Mapping[str, str] | None = None,
    extra_hosts: tuple[tuple[str, str], ...] = (),
) -> BuildPlan:
    """Turn a parsed Dockerfile into the op graph of the `target` stage (default: the last) and its image config.

    `entitlements` are what the user allowed with `--allow`: `network.host` for `RUN --network=host`,
    `security.insecure` for `RUN --security=insecure`. `build_contexts` are the named contexts of
    `--build-context`. `labels` (`build --label`) end the target stage as one LABEL step each, sorted by key and never
    expanded, as Docker's classic builder adds them. `extra_hosts` (`--add-host`) are (name, address) lines every RUN
    finds in /etc/hosts. Raises InstructionError / ExpansionError (with the instruction's location) for what Docker
    refuses."""
    converter = _Converter(parsed, context, build_args, resolve_image, network, entitlements, build_contexts or {})
    converter.labels = dict(labels or {})
    converter.extra_hosts = extra_hosts
    return converter.plan(target)


class _Converter:
    def __init__(
        self,
        parsed: ParsedDockerfile,
        context: ContextSource,
        build_args: Mapping[str, str],
        resolve_image: ImageResolver,
        network: str,
        entitlements: frozenset[str],
        build_contexts: Mapping[str, NamedContext],
    ) -> None:
        self.parsed = parsed
        self.build_contexts = build_contexts
        self.entitlements = entitlements
        self.context = context
        self.build_args = dict(build_args)
        self.resolve_image = resolve_image
        self.network = network
        self.labels: dict[str, str] = {}
        self.extra_hosts: tuple[tuple[str, str], ...] = ()
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
        # BuildKit's automatic platform ARGs: global ARGs with a value, which a Dockerfile's own may override.
        self.meta_args.update(automatic_args(stages[last].name, {}))
        for meta in meta_args:
            self._meta_arg(meta)
        for stage in stages[: last + 1]:
            self.results.append(self._stage(stage))
        final = self.results[-1] = self._with_labels(self.results[-1])
        if not final.steps and isinstance(self.graph.op(final.rootfs), ScratchSource):
            raise InstructionError("No image was generated. Is your Dockerfile empty?")
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
            unused_build_args=frozenset(
                given - self.referenced - PREDEFINED_ARGS - FRONTEND_ARGS - frozenset(AUTOMATIC_ARGS)
            ),
            stage_targets={
                result.name or str(result.index): result.rootfs for result in self.results if result.rootfs in graph
            },
            author=final.author,
        )

    def _with_labels(self, result: _StageResult) -> _StageResult:
        config, steps = result.config, list(result.steps)
        for key in sorted(self.labels):
            config = config.with_label(key, self.labels[key])
            steps.append(HistoryStep(created_by=f"LABEL {key}={self.labels[key]}"))
        return replace(result, config=config, steps=tuple(steps))

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
        if stage.source.platform and not source.platform:
            raise InstructionError(f"empty platform value from expression {stage.source.platform}", location, "FROM")
        if source.platform and normalize_platform(source.platform) is None:
            raise InstructionError(
                f"platform {go_quote(source.platform)} is not supported: only linux/amd64 images are built",
                location,
                "FROM",
            )
        replaced = find_context(self.build_contexts, stage.name) if stage.name else None
        if replaced is not None:
            # BuildKit: a named context of a stage's name stands in for the whole stage.
            state = self._begin_named(stage, source, replaced)
            return _StageResult(state.name, state.index, state.rootfs, state.config, state.base, (), "")
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
        named = find_context(self.build_contexts, source.base_name) if parent is None else None
        if parent is not None:
            rootfs, config, base = parent.rootfs, parent.config, parent.base
            steps = list(parent.steps)
        elif named is not None:
            return self._begin_named(stage, source, named)
        elif source.base_name == "scratch":
            rootfs, config, base, steps = self.graph.add(ScratchSource(), meta), ContainerConfig(), ImageConfig(), []
        else:
            (rootfs, config, base), steps = self._image_source(source.base_name, meta, source), []
        if "PATH" not in config.env_map():
            config = replace(config, env=(*config.env, f"PATH={DEFAULT_PATH}"))
        return _StageState(name=stage.name, index=stage.index, rootfs=rootfs, config=config, base=base, steps=steps)

    def _begin_named(self, stage: Stage, source: From, named: NamedContext) -> _StageState:
        """A stage whose base is a named context: a folder's files as the root filesystem, or an image."""
        meta = OpMeta(name=f"FROM {source.base_name}", stage=stage.name, location=source.location)
        if isinstance(named, ImageContext):
            rootfs, config, base = self._image_source(named.ref, meta, source)
        else:
            folder = self._named_folder(source.base_name if not stage.name else stage.name, named)
            copy = CopyAction(source=folder, src="/", dest="/", dest_is_dir=True, exclude=named.exclude)
            rootfs = self.graph.add(FileOp(base=self.graph.add(ScratchSource(), meta), actions=(copy,)), meta)
            config, base = ContainerConfig(), ImageConfig()
        if "PATH" not in config.env_map():
            config = replace(config, env=(*config.env, f"PATH={DEFAULT_PATH}"))
        return _StageState(name=stage.name, index=stage.index, rootfs=rootfs, config=config, base=base, steps=[])

    def _named_folder(self, name: str, named: LocalContext) -> Digest:
        op = ContextSource(name=f"context:{name}", path=str(named.path), exclude=named.exclude)
        return self.graph.add(op, OpMeta(name=f"load build context {name}"))

    def _image_source(
        self, ref: str, meta: OpMeta, instruction: Instruction
    ) -> tuple[Digest, ContainerConfig, ImageConfig]:
        try:
            resolved = self.resolve_image(ref)
        except DockerfileError:
            raise
        except BuildError as error:
            raise InstructionError(str(error), instruction.location, instruction.keyword) from None
        rootfs = self.graph.add(ImageSource(ref=resolved.ref, image_id=resolved.image_id), meta)
        return rootfs, resolved.config.config, resolved.config

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
            name=_display(f"{self._prefix(state.name, state.index, number, total)} {text}"),
            stage=_display(state.name),
            location=instruction.location,
        )

    # --- environments ------------------------------------------------------------------------------------------------

    def _arg_value(self, key: str, default: str | None) -> str | None:
        if key in self.build_args:
            return self.build_args[key]
        if default is not None:
            return default
        return self.meta_args.get(key)

    def _declared_args(self, state: _StageState) -> dict[str, str]:
        values = {}
        for key, default in state.args.items():
            value = self._arg_value(key, default)
            if value is not None:
                values[key] = value
        return values

    def _proxies(self, state: _StageState) -> dict[str, str]:
        """Proxy build args the stage did not declare: they reach RUN but not its cache key or the history."""
        return {
            key: value for key, value in self.build_args.items() if key in PREDEFINED_ARGS and key not in state.args
        }

    def _args_in_scope(self, state: _StageState) -> dict[str, str]:
        return {**self._proxies(state), **self._declared_args(state)}

    def _env(self, state: _StageState) -> dict[str, str]:
        return {**self._args_in_scope(state), **state.config.env_map()}

    def _run_env(self, state: _StageState) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The step's environment, and the proxy settings added to it when it runs."""
        config_env = state.config.env_map()
        extra = sorted(f"{key}={value}" for key, value in self._declared_args(state).items() if key not in config_env)
        env = (*state.config.env, *extra)
        if "PATH" not in config_env:
            env = (*env, f"PATH={DEFAULT_PATH}")
        proxies = tuple(f"{key}={value}" for key, value in self._proxy_env(state).items() if key not in config_env)
        return env, proxies

    def _proxy_env(self, state: _StageState) -> dict[str, str]:
        """BuildKit's proxy environment of a RUN: each proxy build arg under both its upper- and lower-case name
        (of two spellings given, the lower-case one, last in sorted order), less the names the stage declared."""
        values: dict[str, str] = {}
        for key in sorted(self.build_args):
            if key in PREDEFINED_ARGS:
                values[key.upper()] = values[key.lower()] = self.build_args[key]
        return {key: value for key, value in values.items() if key not in state.args}

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
        try:
            command, scripts = run_command(run)
        except HeredocError as error:
            raise self._fail(run, str(error)) from None
        args = with_shell(state.config, command, run.prepend_shell)
        env, proxy_env = self._run_env(state)
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
            scripts=scripts,
            proxy_env=proxy_env,
            extra_hosts=self.extra_hosts,
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
        env = self._env(state)
        expanded = self._expand(instruction, env)
        keyword = instruction.keyword
        sources = [classify_source(instruction, source_path) for source_path in expanded.sources]
        mode = file_mode(instruction, expanded.chmod)
        checksum = add_checksum(expanded, sources) if isinstance(expanded, Add) else ""
        # BuildKit links only without --chmod: an octal mode also goes to the parents the copy creates, which the
        # linked layer would then stack over the stage's own.
        link = expanded.link and mode is None
        dest_is_dir = expanded.dest.endswith("/")
        several = len(expanded.sources) + len(expanded.inline_sources) > 1
        if several and not dest_is_dir:
            raise self._fail(
                instruction,
                f"When using {keyword} with more than one source file, the destination must be a directory and end "
                "with a /",
            )
        if link and names_working_dir(expanded.dest):
            dest_is_dir = True  # on an empty tree nothing says the working directory is a folder
        chown = _chown(expanded.chown)
        if link and chown is not None:
            chown = numeric_chown(instruction, chown)
        parent = state.rootfs
        template = CopyAction(
            source=parent,
            src="",
            dest=_copy_dest(expanded.dest, state.config.working_dir),
            dest_is_dir=dest_is_dir,
            chown=chown,
            chmod=mode.octal if mode is not None else None,
            chmod_symbolic=mode.text if mode is not None and mode.symbolic else "",
            exclude_patterns=expanded.exclude,
        )
        actions: list[CopyAction] = []
        for source in sources:
            if isinstance(source, GitRef):
                assert isinstance(expanded, Add)  # classify_source gives repositories to ADD only
                git = self.graph.add(git_source(expanded, source, checksum), meta)
                actions.append(replace(template, source=git, src="/", allow_wildcard=False))
            elif isinstance(source, HttpUrl):
                filename = url_filename(source.url)
                http = self.graph.add(HttpSource(url=source.url, filename=filename, checksum=checksum), meta)
                # a name only the response gives (Content-Disposition) is matched with a wildcard
                actions.append(replace(template, source=http, src=filename or "*", allow_wildcard=not filename))
            else:
                actions.append(self._local_action(state, expanded, template, source, several=several))
        actions.extend(self._inline_actions(state, instruction, env, template))
        if link:
            scratch = self.graph.add(ScratchSource(), OpMeta(name="scratch"))
            linked = self.graph.add(FileOp(base=scratch, actions=tuple(actions)), meta)
            merge_meta = replace(meta, name=meta.name.replace(f"] {keyword}", f"] LINK {keyword}", 1))
            state.rootfs = self.graph.add(MergeOp(layers=(parent, linked)), merge_meta)
        else:
            state.rootfs = self.graph.add(FileOp(base=parent, actions=tuple(actions)), meta)
        flags = " --parents" if isinstance(expanded, Copy) and expanded.parents else ""
        flags += f" --chmod={expanded.chmod}" if expanded.chmod else ""
        written = [*expanded.sources, *(f"<<{source.name}" for source in expanded.inline_sources)]
        created_by = f"{keyword}{flags} {' '.join(written)} {expanded.dest} # buildkit"
        state.steps.append(HistoryStep(created_by=created_by, op=state.rootfs, parent=parent, location=meta.location))

    def _local_action(
        self, state: _StageState, expanded: Copy | Add, template: CopyAction, source: str, several: bool
    ) -> CopyAction:
        """A source from the build context or (COPY --from) a stage or an image."""
        from_ = expanded.from_ if isinstance(expanded, Copy) else ""
        origin, from_context = self._copy_source(state, expanded, from_)
        source_op = self.graph.op(origin)
        chown = template.chown
        if chown is None and from_context:
            chown = Chown("0", "0")  # Docker's classic builder gives context files to root (and so drops setuid)
        src, include, required = source, "", False
        if isinstance(expanded, Copy) and expanded.parents:
            src, include, required = split_parents(source)
        return replace(
            template,
            source=origin,
            src=src,
            attempt_unpack=isinstance(expanded, Add) and from_context,
            chown=chown,
            exclude=source_op.exclude if isinstance(source_op, ContextSource) else (),
            # Docker counts matches per instruction: one source may match nothing when another matches.
            allow_empty_wildcard=several,
            include_pattern=include,
            required=required,
        )

    def _inline_actions(
        self, state: _StageState, instruction: Copy | Add, env: Mapping[str, str], template: CopyAction
    ) -> list[CopyAction]:
        """A copy of each heredoc source, from a tree holding only its file (BuildKit writes it owned by root)."""
        try:
            sources = inline_sources(instruction, env)
        except HeredocError as error:
            raise self._fail(instruction, str(error)) from None
        except ExpansionError as error:
            raise self._fail(instruction, error.message) from None
        actions = []
        for source in sources:
            digest = self.graph.add(source, OpMeta(name="preparing inline document", stage=state.name))
            actions.append(
                replace(
                    template,
                    source=digest,
                    src=source.files[0].name,
                    allow_wildcard=False,
                    chown=template.chown or Chown("0", "0"),
                )
            )
        return actions

    def _copy_source(self, state: _StageState, instruction: Instruction, from_: str) -> tuple[Digest, bool]:
        if not from_:
            return self.graph.add(self.context, OpMeta(name=f"load build context {self.context.name}")), True
        return self.source_named(state, instruction, from_)

    def source_named(self, state: _StageState, instruction: Instruction, name: str) -> tuple[Digest, bool]:
        """What `--from=NAME` names (COPY --from, RUN --mount from=): an earlier stage by name, a stage index, a
        named build context, else an image. The bool says whether it is a folder of this machine (a build context),
        whose files COPY gives to root."""
        stage = self._find_stage(name)
        if stage is not None:
            return stage.rootfs, False
        if re.fullmatch(r"[+-]?[0-9]+", name):
            index = int(name)
            if 0 <= index < len(self.results):
                return self.results[index].rootfs, False
            raise self._fail(instruction, f"invalid from flag value {name}: index out of bounds")
        named = find_context(self.build_contexts, name)
        if isinstance(named, LocalContext):
            return self._named_folder(name, named), True
        ref = named.ref if isinstance(named, ImageContext) else name
        try:
            resolved = self.resolve_image(ref)
        except BuildError as error:
            message = error.message if isinstance(error, DockerfileError) else str(error)
            raise self._fail(instruction, f"invalid from flag value {name}: {message}") from None
        op = ImageSource(ref=resolved.ref, image_id=resolved.image_id)
        return self.graph.add(op, OpMeta(name=f"FROM {ref}", stage=state.name, location=instruction.location)), False


def _display(text: str) -> str:
    """Text to show and to record beside the cache: bytes of the Dockerfile that were not UTF-8 (surrogate escapes,
    which neither a terminal nor SQLite takes) become `\\xNN`."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
