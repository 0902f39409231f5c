"""One function per instruction that changes the image config: BuildKit's `dispatchEnv`, `dispatchCmd`, ... which
moby's classic builder also runs for `docker import --change` and `docker commit --change`.

Each takes the current config and the instruction, already expanded where Docker expands it, and returns the new
config with the history text the build records (BuildKit's wording). The build (`dockerfile2ops`), `pybuild import
--change` (`changes.py`) and any later caller go through `apply_instruction`, so they validate and apply alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar, cast

from ..errors import ExpansionError, InstructionError
from ..gostring import go_clean, go_quote, go_quote_list, go_quote_rune
from ..image.config import ContainerConfig
from .convert import format_go_duration
from .instructions import (
    Arg,
    Cmd,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)

if TYPE_CHECKING:
    from .shell import ShellLexer

__all__ = [
    "DEFAULT_SHELL",
    "ConfigChange",
    "apply_instruction",
    "dispatch_arg",
    "dispatch_cmd",
    "dispatch_entrypoint",
    "dispatch_env",
    "dispatch_expose",
    "dispatch_healthcheck",
    "dispatch_label",
    "dispatch_maintainer",
    "dispatch_onbuild",
    "dispatch_shell",
    "dispatch_stopsignal",
    "dispatch_user",
    "dispatch_volume",
    "dispatch_workdir",
    "expand_instruction",
    "with_shell",
]

DEFAULT_SHELL = ("/bin/sh", "-c")
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})
_PORT = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_SIGNAL_NAMES = frozenset(
    [
        "ABRT",
        "ALRM",
        "BUS",
        "CHLD",
        "CLD",
        "CONT",
        "FPE",
        "HUP",
        "ILL",
        "INT",
        "IO",
        "IOT",
        "KILL",
        "PIPE",
        "POLL",
        "PROF",
        "PWR",
        "QUIT",
        "SEGV",
        "STKFLT",
        "STOP",
        "SYS",
        "TERM",
        "TRAP",
        "TSTP",
        "TTIN",
        "TTOU",
        "UNUSED",
        "URG",
        "USR1",
        "USR2",
        "VTALRM",
        "WINCH",
        "XCPU",
        "XFSZ",
        "RTMIN",
        "RTMAX",
    ]
    + [f"RTMIN+{n}" for n in range(1, 16)]
    + [f"RTMAX-{n}" for n in range(1, 15)]
)
_I = TypeVar("_I", bound=Instruction)


@dataclass(frozen=True)
class ConfigChange:
    """What one instruction did: the new config and its history text. `cmd_set` says whether the stage has set CMD
    by now (ENTRYPOINT keeps only such a CMD); `author` is the name MAINTAINER gave, None when unchanged."""

    config: ContainerConfig
    created_by: str
    cmd_set: bool = False
    author: str | None = None


def apply_instruction(config: ContainerConfig, instruction: Instruction, *, cmd_set: bool = False) -> ConfigChange:
    """Apply one expanded metadata instruction to `config`; `cmd_set` is whether CMD was set earlier in this stage
    (or this list of changes). Raises InstructionError, at the instruction's location, for what Docker refuses."""
    change = _dispatch(config, instruction, cmd_set)
    return replace(change, cmd_set=cmd_set or change.cmd_set)


def expand_instruction(instruction: _I, lexer: ShellLexer, env: Mapping[str, str]) -> _I:
    """The instruction with its words expanded against `env` as Docker does before dispatching it; an expansion
    error carries the instruction's location."""
    try:
        if isinstance(instruction, Expose):
            # Docker's one word-to-words expansion: `EXPOSE $PORTS` with PORTS="80 443/udp" exposes each port.
            ports = tuple(word for port in instruction.ports for word in lexer.process_words(port, env))
            return cast(_I, replace(instruction, ports=ports))
        return instruction.expand(lambda word: lexer.process_word(word, env))
    except ExpansionError as error:
        raise ExpansionError(error.message, instruction.location, instruction.keyword) from None


def _dispatch(config: ContainerConfig, instruction: Instruction, cmd_set: bool) -> ConfigChange:
    if isinstance(instruction, Env):
        return dispatch_env(config, instruction)
    if isinstance(instruction, Arg):
        return dispatch_arg(config, instruction)
    if isinstance(instruction, Label):
        return dispatch_label(config, instruction)
    if isinstance(instruction, Expose):
        return dispatch_expose(config, instruction)
    if isinstance(instruction, Volume):
        return dispatch_volume(config, instruction)
    if isinstance(instruction, User):
        return dispatch_user(config, instruction)
    if isinstance(instruction, Workdir):
        return dispatch_workdir(config, instruction)
    if isinstance(instruction, Cmd):
        return dispatch_cmd(config, instruction)
    if isinstance(instruction, Entrypoint):
        return dispatch_entrypoint(config, instruction, cmd_set=cmd_set)
    if isinstance(instruction, Shell):
        return dispatch_shell(config, instruction)
    if isinstance(instruction, Healthcheck):
        return dispatch_healthcheck(config, instruction)
    if isinstance(instruction, StopSignal):
        return dispatch_stopsignal(config, instruction)
    if isinstance(instruction, Onbuild):
        return dispatch_onbuild(config, instruction)
    if isinstance(instruction, Maintainer):
        return dispatch_maintainer(config, instruction)
    raise _fail(instruction, f"{instruction.keyword} is not allowed here")


def _fail(instruction: Instruction, message: str) -> InstructionError:
    return InstructionError(message, instruction.location, instruction.keyword)


def with_shell(config: ContainerConfig, command: tuple[str, ...], prepend_shell: bool) -> tuple[str, ...]:
    """A shell-form command as SHELL (else /bin/sh -c) runs it; an exec-form command as it is."""
    if not prepend_shell:
        return command
    shell = config.shell if config.shell is not None else DEFAULT_SHELL
    return (*shell, *command)


def dispatch_env(config: ContainerConfig, env: Env) -> ConfigChange:
    for key, value in env.pairs:
        if not key:
            raise _fail(env, "ENV names can not be blank")
        config = config.with_env(key, value)
    return ConfigChange(config, "ENV " + " ".join(f"{key}={value}" for key, value in env.pairs))


def dispatch_arg(config: ContainerConfig, arg: Arg) -> ConfigChange:
    """ARG leaves the config alone: the values it declares are the build's to keep, not the image's."""
    text = " ".join(name if default is None else f"{name}={default}" for name, default in arg.pairs)
    return ConfigChange(config, f"ARG {text}")


def dispatch_label(config: ContainerConfig, label: Label) -> ConfigChange:
    for key, value in label.pairs:
        config = config.with_label(key, value)
    return ConfigChange(config, "LABEL " + " ".join(f"{key}={value}" for key, value in label.pairs))


def dispatch_expose(config: ContainerConfig, expose: Expose) -> ConfigChange:
    ports: set[str] = set()
    for raw in expose.ports:
        ports.update(_ports(expose, raw))
    config = replace(config, exposed_ports=tuple(sorted(set(config.exposed_ports) | ports)))
    return ConfigChange(config, "EXPOSE map[" + " ".join(f"{port}:{{}}" for port in sorted(ports)) + "]")


def _ports(expose: Expose, raw: str) -> list[str]:
    """Every port of `80`, `53/udp` or `8000-8002/tcp` as `number/protocol` (nat.ParsePortSpecs' checks)."""
    port, _, protocol = raw.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in _PROTOCOLS:
        raise _fail(expose, f"Invalid proto: {protocol}")
    match = _PORT.fullmatch(port)
    if match is None:
        raise _fail(expose, f"Invalid containerPort: {port}")
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if end < start or end > 65535:
        raise _fail(expose, f"Invalid containerPort: {port}")
    return [f"{number}/{protocol}" for number in range(start, end + 1)]


def dispatch_volume(config: ContainerConfig, volume: Volume) -> ConfigChange:
    if any(not path for path in volume.paths):
        raise _fail(volume, "VOLUME specified can not be an empty string")
    config = replace(config, volumes=tuple(sorted(set(config.volumes) | set(volume.paths))))
    return ConfigChange(config, "VOLUME [" + " ".join(volume.paths) + "]")


def dispatch_user(config: ContainerConfig, user: User) -> ConfigChange:
    return ConfigChange(replace(config, user=user.user), f"USER {user.user}")


def dispatch_workdir(config: ContainerConfig, workdir: Workdir) -> ConfigChange:
    """moby's normalizeWorkdir: a relative path joins the current one and is cleaned, an absolute one is kept as
    written. (A build cleans it once more when it makes the directory, as Docker does when it creates the step's
    container; `--change` creates none, so `docker import --change "WORKDIR /a/../b"` keeps `/a/../b`.)"""
    path = workdir.path
    if not path:
        raise _fail(workdir, "cannot normalize nothing")
    if not path.startswith("/"):
        path = go_clean(f"/{config.working_dir}/{path}")
    return ConfigChange(replace(config, working_dir=path), f"WORKDIR {path}")


def dispatch_cmd(config: ContainerConfig, cmd: Cmd) -> ConfigChange:
    """A CMD with no arguments (`CMD`, `CMD []`) still sets Cmd, but as Docker does, it does not count as set for a
    later ENTRYPOINT, which clears it."""
    command = with_shell(config, cmd.command, cmd.prepend_shell)
    return ConfigChange(replace(config, cmd=command), f"CMD {go_quote_list(command)}", cmd_set=bool(cmd.command))


def dispatch_entrypoint(config: ContainerConfig, entrypoint: Entrypoint, *, cmd_set: bool) -> ConfigChange:
    """ENTRYPOINT clears a CMD the stage inherited, and keeps one it set itself. With no arguments (`ENTRYPOINT`,
    `ENTRYPOINT []`) no shell is prepended and Entrypoint becomes null, as Docker 20.10 leaves it."""
    command = with_shell(config, entrypoint.command, entrypoint.prepend_shell) if entrypoint.command else ()
    config = replace(config, entrypoint=command or None, cmd=config.cmd if cmd_set else None)
    return ConfigChange(config, f"ENTRYPOINT {go_quote_list(command)}")


def dispatch_shell(config: ContainerConfig, shell: Shell) -> ConfigChange:
    return ConfigChange(replace(config, shell=shell.shell), "SHELL [" + " ".join(shell.shell) + "]")


def dispatch_healthcheck(config: ContainerConfig, healthcheck: Healthcheck) -> ConfigChange:
    config = replace(config, healthcheck=healthcheck.healthcheck)
    return ConfigChange(config, "HEALTHCHECK " + _healthcheck_text(healthcheck))


def dispatch_stopsignal(config: ContainerConfig, stop_signal: StopSignal) -> ConfigChange:
    signal = stop_signal.signal
    if not _valid_signal(signal):
        raise _fail(stop_signal, f"Invalid signal: {signal}")
    return ConfigChange(replace(config, stop_signal=signal), f"STOPSIGNAL {signal}")


def dispatch_onbuild(config: ContainerConfig, onbuild: Onbuild) -> ConfigChange:
    config = replace(config, on_build=(*config.on_build, onbuild.expression))
    return ConfigChange(config, f"ONBUILD {onbuild.expression}")


def dispatch_maintainer(config: ContainerConfig, maintainer: Maintainer) -> ConfigChange:
    """MAINTAINER names the image's author, which is not part of the container config."""
    return ConfigChange(config, f"MAINTAINER {maintainer.maintainer}", author=maintainer.maintainer)


def _valid_signal(signal: str) -> bool:
    if signal.isdigit():
        return 0 < int(signal) < 256
    return signal.upper().removeprefix("SIG") in _SIGNAL_NAMES


def _healthcheck_text(instruction: Healthcheck) -> str:
    """Go's `%q` of a *HealthConfig, as Docker writes it in history."""
    health = instruction.healthcheck
    durations = " ".join(
        go_quote(format_go_duration(value)) for value in (health.interval, health.timeout, health.start_period)
    )
    return f"&{{{go_quote_list(health.test)} {durations} {go_quote_rune(health.retries)}}}"
