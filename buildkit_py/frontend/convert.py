"""Parsed nodes to typed instructions and stages (BuildKit `instructions/parse.go`), with Docker 20.10's checks.

Everything that can be checked without a variable's value is checked here, for every stage, before anything is
dispatched: Docker reports these as "dockerfile parse error line N".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ..context.dockerignore import IgnoreRules
from ..errors import ContextError, InstructionError, SourceLocation
from ..gostring import go_quote
from ..image.config import Healthcheck as HealthcheckConfig
from .flags import FlagError, ParsedFlags, parse_flags
from .instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    InlineFile,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from .parser import Node, ParsedDockerfile, chomp_heredoc, parse_heredoc_word
from .runmount import MountError, check_mount_syntax

__all__ = [
    "check_trigger_keyword",
    "format_go_duration",
    "location_of",
    "node_to_instruction",
    "parse_go_duration",
    "parse_stages",
    "trigger_error",
]

REQUIRES_BUILDKIT = (
    "the --{flag} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build "
    "images with BuildKit enabled"
)
RUN_NETWORKS = ("default", "none", "host")
RUN_SECURITY_MODES = ("sandbox", "insecure")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*")
_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)
_MINIMUM_DURATION = 1_000_000  # container.MinimumDuration, 1ms in nanoseconds


class _Invalid(Exception):
    """A node is invalid; `node_to_instruction` adds location and keyword."""


def location_of(node: Node, filename: str) -> SourceLocation:
    return SourceLocation(filename, node.start_line, node.end_line, node.original)


def node_to_instruction(node: Node, filename: str = "Dockerfile") -> Instruction:
    """Convert one parsed node; raise InstructionError with the node's location."""
    location = location_of(node, filename)
    convert = _CONVERTERS.get(node.keyword)
    if convert is None:
        raise InstructionError(f"unknown instruction: {node.keyword.upper()}", location)
    try:
        return convert(node, location)
    except (_Invalid, FlagError) as error:
        raise InstructionError(str(error), location, node.keyword.upper()) from None


def parse_stages(parsed: ParsedDockerfile) -> tuple[tuple[Arg, ...], tuple[Stage, ...]]:
    """The ARGs before the first FROM (meta args), and the stages."""
    meta_args: list[Arg] = []
    stages: list[Stage] = []
    current: tuple[From, list[Instruction]] | None = None
    for node in parsed.nodes:
        instruction = node_to_instruction(node, parsed.filename)
        if isinstance(instruction, From):
            if current is not None:
                stages.append(Stage(len(stages), current[0], tuple(current[1])))
            current = (instruction, [])
        elif current is not None:
            current[1].append(instruction)
        elif isinstance(instruction, Arg):
            meta_args.append(instruction)
        else:
            raise InstructionError("no build stage in current context", instruction.location, instruction.keyword)
    if current is None:
        raise InstructionError("no build stage in current context", None)
    stages.append(Stage(len(stages), current[0], tuple(current[1])))
    return tuple(meta_args), tuple(stages)


# --- one converter per keyword ---------------------------------------------------------------------------------------


def _flags(node: Node) -> ParsedFlags:
    return parse_flags(node.keyword, node.flags)


def _no_flags(node: Node) -> None:
    parse_flags(node.keyword, node.flags, known={})


def _at_least_one(node: Node) -> None:
    if not node.args:
        raise _Invalid(f"{node.keyword.upper()} requires at least one argument")


def _exactly_one(node: Node) -> str:
    if len(node.args) != 1:
        raise _Invalid(f"{node.keyword.upper()} requires exactly one argument")
    return node.args[0]


def _command(node: Node) -> tuple[tuple[str, ...], bool]:
    """(command, prepend_shell): the exec form as given, the shell form as one string."""
    if node.json_form:
        return tuple(node.args), False
    return ((" ".join(node.args),) if node.args else ()), True


def _from(node: Node, location: SourceLocation) -> From:
    flags = _flags(node)
    args = node.args
    if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
        raise _Invalid("FROM requires either one or three arguments")
    stage_name = args[2].lower() if len(args) == 3 else ""
    if stage_name and not _STAGE_NAME.fullmatch(stage_name):
        raise _Invalid(
            f"invalid name for build stage: {go_quote(args[2])}, name can't start with a number or contain symbols"
        )
    return From(location=location, base_name=args[0], stage_name=stage_name, platform=flags.string("platform"))


def _run(node: Node, location: SourceLocation) -> Run:
    flags = _flags(node)
    mounts = flags.strings("mount")
    for mount in mounts:
        try:
            check_mount_syntax(mount)
        except MountError as error:
            raise _Invalid(str(error)) from None
    network = flags.string("network")
    if "network" in flags and network not in RUN_NETWORKS:
        raise _Invalid(f"invalid network mode {go_quote(network)}: use one of {', '.join(RUN_NETWORKS)}")
    security = flags.string("security")
    if "security" in flags and security not in RUN_SECURITY_MODES:
        raise _Invalid(f"invalid security mode {go_quote(security)}: use one of {', '.join(RUN_SECURITY_MODES)}")
    command, prepend_shell = _command(node)
    if prepend_shell and not command:
        command = ("",)
    heredocs = tuple(InlineFile(doc.name, doc.content, doc.chomp, doc.expand) for doc in node.heredocs)
    return Run(
        location=location,
        command=command,
        prepend_shell=prepend_shell,
        network=network,
        security=security,
        heredocs=heredocs,
        mounts=mounts,
    )


def _copy_args(node: Node) -> tuple[tuple[str, ...], str, tuple[InlineFile, ...]]:
    """(paths, destination, heredoc sources) as BuildKit's parseSourcesAndDest splits them."""
    if len(node.args) < 2:
        raise _Invalid(
            f"{node.keyword.upper()} requires at least two arguments, but only one was provided. "
            "Destination could not be determined."
        )
    dest = node.args[-1]
    if parse_heredoc_word(dest) is not None:
        raise _Invalid(f"{node.keyword.upper()} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc for doc in node.heredocs}
    paths: list[str] = []
    inline: list[InlineFile] = []
    for source in node.args[:-1]:
        heredoc = parse_heredoc_word(source)
        if heredoc is None:
            paths.append(source)
            continue
        body = bodies.get(heredoc.name)
        content = body.content if body is not None else ""
        if heredoc.chomp:
            content = chomp_heredoc(content)
        inline.append(InlineFile(heredoc.name, content, heredoc.chomp, heredoc.expand))
    return tuple(paths), dest, tuple(inline)


def _exclude_patterns(flags: ParsedFlags) -> tuple[str, ...]:
    patterns = flags.strings("exclude")
    for pattern in patterns:
        try:
            IgnoreRules((pattern,))
        except ContextError as error:
            reason = str(error).rpartition(": ")[2]
            raise _Invalid(f"invalid --exclude pattern {go_quote(pattern)}: {reason}") from None
    return patterns


def _copy(node: Node, location: SourceLocation) -> Copy:
    flags = _flags(node)
    sources, dest, inline = _copy_args(node)
    return Copy(
        location=location,
        sources=sources,
        dest=dest,
        inline_sources=inline,
        from_=flags.string("from"),
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.boolean("link"),
        exclude=_exclude_patterns(flags),
        parents=flags.boolean("parents"),
    )


def _add(node: Node, location: SourceLocation) -> Add:
    flags = _flags(node)
    sources, dest, inline = _copy_args(node)
    return Add(
        location=location,
        sources=sources,
        dest=dest,
        inline_sources=inline,
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.boolean("link"),
        exclude=_exclude_patterns(flags),
        checksum=flags.string("checksum"),
        keep_git_dir=flags.boolean("keep-git-dir") if "keep-git-dir" in flags else None,
    )


def _key_value_triples(node: Node) -> tuple[tuple[str, str], ...]:
    """ENV/LABEL arguments come from the parser as (key, value, separator) triples."""
    _no_flags(node)
    _at_least_one(node)
    args = node.args
    pairs = tuple((args[i], args[i + 1]) for i in range(0, len(args) - 2, 3))
    return pairs


def _env(node: Node, location: SourceLocation) -> Env:
    pairs = _key_value_triples(node)
    if any(not key for key, _ in pairs):
        raise _Invalid("ENV names can not be blank")
    return Env(location=location, pairs=pairs)


def _label(node: Node, location: SourceLocation) -> Label:
    pairs = _key_value_triples(node)
    if any(not key for key, _ in pairs):
        raise _Invalid("LABEL names can not be blank")
    return Label(location=location, pairs=pairs)


def _arg(node: Node, location: SourceLocation) -> Arg:
    _no_flags(node)
    _at_least_one(node)
    pairs: list[tuple[str, str | None]] = []
    for word in node.args:
        key, equals, value = word.partition("=")
        if not key:
            raise _Invalid("ARG names can not be blank")
        pairs.append((key, value if equals else None))
    return Arg(location=location, pairs=tuple(pairs))


def _expose(node: Node, location: SourceLocation) -> Expose:
    _no_flags(node)
    _at_least_one(node)
    return Expose(location=location, ports=tuple(node.args))


def _volume(node: Node, location: SourceLocation) -> Volume:
    _no_flags(node)
    _at_least_one(node)
    return Volume(location=location, paths=tuple(node.args))


def _user(node: Node, location: SourceLocation) -> User:
    _no_flags(node)
    return User(location=location, user=_exactly_one(node))


def _workdir(node: Node, location: SourceLocation) -> Workdir:
    _no_flags(node)
    return Workdir(location=location, path=_exactly_one(node))


def _cmd(node: Node, location: SourceLocation) -> Cmd:
    _no_flags(node)
    command, prepend_shell = _command(node)
    return Cmd(location=location, command=command, prepend_shell=prepend_shell)


def _entrypoint(node: Node, location: SourceLocation) -> Entrypoint:
    _no_flags(node)
    command, prepend_shell = _command(node)
    return Entrypoint(location=location, command=command, prepend_shell=prepend_shell)


def _shell(node: Node, location: SourceLocation) -> Shell:
    _no_flags(node)
    _at_least_one(node)
    if not node.json_form:
        raise _Invalid("SHELL requires the arguments to be in JSON form")
    return Shell(location=location, shell=tuple(node.args))


def _stopsignal(node: Node, location: SourceLocation) -> StopSignal:
    _no_flags(node)
    return StopSignal(location=location, signal=_exactly_one(node))


def _maintainer(node: Node, location: SourceLocation) -> Maintainer:
    _no_flags(node)
    return Maintainer(location=location, maintainer=_exactly_one(node))


def _onbuild(node: Node, location: SourceLocation) -> Onbuild:
    _no_flags(node)
    child = node.child
    if child is None:
        raise _Invalid("ONBUILD requires at least one argument")
    check_trigger_keyword(child.keyword)
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    # The trigger is stored as text: its heredocs go with it, each body followed by its delimiter.
    expression += "".join(f"\n{doc.content}{doc.name}" for doc in node.heredocs)
    return Onbuild(location=location, expression=expression)


def check_trigger_keyword(keyword: str) -> None:
    """ONBUILD ONBUILD, ONBUILD FROM and ONBUILD MAINTAINER are refused, when written and when triggered."""
    if keyword == "onbuild":
        raise _Invalid("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("from", "maintainer"):
        raise _Invalid(f"{keyword.upper()} isn't allowed as an ONBUILD trigger")


def _healthcheck(node: Node, location: SourceLocation) -> Healthcheck:
    _at_least_one(node)
    kind = node.args[0].upper()
    command = node.args[1:]
    if kind == "NONE":
        # Docker never parses the flags of HEALTHCHECK NONE.
        if command:
            raise _Invalid("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(location=location, healthcheck=HealthcheckConfig(test=("NONE",)))
    flags = _flags(node)
    if kind != "CMD":
        raise _Invalid(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    if not command or (not node.json_form and not command[0]):
        raise _Invalid("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *command) if node.json_form else ("CMD-SHELL", " ".join(command))
    config = HealthcheckConfig(
        test=test,
        interval=_interval(flags, "interval"),
        timeout=_interval(flags, "timeout"),
        start_period=_interval(flags, "start-period"),
        retries=_retries(flags.string("retries")),
    )
    return Healthcheck(location=location, healthcheck=config)


def _interval(flags: ParsedFlags, name: str) -> int:
    text = flags.string(name)
    if not text:
        return 0
    try:
        nanoseconds = parse_go_duration(text)
    except ValueError as error:
        raise _Invalid(str(error)) from None
    if nanoseconds < _MINIMUM_DURATION:
        raise _Invalid(f"Interval {go_quote(name)} cannot be less than 1ms")
    return nanoseconds


def _retries(text: str) -> int:
    if not text:
        return 0
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise _Invalid(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    retries = int(text)
    if not -(2**31) <= retries < 2**31:
        raise _Invalid(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    if retries < 1:
        raise _Invalid(f"--retries must be at least 1 (not {retries})")
    return retries


_CONVERTERS: Mapping[str, Callable[[Node, SourceLocation], Instruction]] = {
    "add": _add,
    "arg": _arg,
    "cmd": _cmd,
    "copy": _copy,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "from": _from,
    "healthcheck": _healthcheck,
    "label": _label,
    "maintainer": _maintainer,
    "onbuild": _onbuild,
    "run": _run,
    "shell": _shell,
    "stopsignal": _stopsignal,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
}


def trigger_error(keyword: str, location: SourceLocation) -> InstructionError | None:
    """The error Docker gives for an ONBUILD trigger with this keyword, if any."""
    try:
        check_trigger_keyword(keyword)
    except _Invalid as error:
        return InstructionError(str(error), location, "ONBUILD")
    return None


# --- Go's time.Duration ----------------------------------------------------------------------------------------------

_UNITS: Mapping[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5
    "μs": 1_000,  # U+03BC
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_MAX_DURATION = 2**63 - 1


def parse_go_duration(text: str) -> int:
    """Go's `time.ParseDuration`, in nanoseconds; ValueError with Go's message."""
    quoted = go_quote(text)
    rest = text
    negative = rest[:1] == "-"
    if rest[:1] in ("-", "+"):
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # the pattern matches the empty string
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if fraction:
            value += int(fraction) * scale // 10 ** len(fraction)
        total += value
        if total > _MAX_DURATION:
            raise ValueError(f"time: invalid duration {quoted}")
        rest = rest[match.end() :]
    return -total if negative else total


def format_go_duration(nanoseconds: int) -> str:
    """Go's `time.Duration.String()`: 1m30s, 500ms, 1.5s, 0s."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    value = abs(nanoseconds)
    if value < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if value >= scale or unit == "ns":
                return sign + _decimal(value, scale) + unit
    hours, value = divmod(value, 3_600_000_000_000)
    minutes, value = divmod(value, 60_000_000_000)
    seconds = _decimal(value, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _decimal(value: int, scale: int) -> str:
    whole, fraction = divmod(value, scale)
    if not fraction:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{str(fraction).rjust(digits, '0').rstrip('0')}"
