"""Nodes to typed instructions: arguments, flags and the errors Docker 20.10 gives at parse time."""

from __future__ import annotations

import pytest

from buildkit_py.errors import InstructionError
from buildkit_py.frontend.convert import format_go_duration, node_to_instruction, parse_go_duration, parse_stages
from buildkit_py.frontend.flags import FlagError, FlagKind, parse_flags
from buildkit_py.frontend.instructions import (
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
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from buildkit_py.frontend.parser import parse_dockerfile
from buildkit_py.image.config import Healthcheck as HealthcheckConfig


def convert(line: str) -> Instruction:
    parsed = parse_dockerfile(line + "\n")
    return node_to_instruction(parsed.nodes[0], parsed.filename)


def refused(line: str) -> InstructionError:
    with pytest.raises(InstructionError) as caught:
        convert(line)
    return caught.value


# --- flags -----------------------------------------------------------------------------------------------------------


def test_flags_known_values() -> None:
    flags = parse_flags("copy", ["--from=build", "--chown=1:2"])
    assert flags.string("from") == "build"
    assert flags.string("chown") == "1:2"
    assert flags.used == ("from", "chown")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["--foo=1"], "Unknown flag: foo"),
        (["--from=a", "--from=b"], "Duplicate flag specified: from"),
        (["--chown"], "Missing a value on flag: chown"),
        (["from=a"], "Arg should start with -- : from=a"),
    ],
)
def test_flag_errors(raw: list[str], message: str) -> None:
    with pytest.raises(FlagError, match=f"^{message}$"):
        parse_flags("copy", raw)


def test_boolean_flags() -> None:
    known = {"link": FlagKind.BOOL}
    assert parse_flags("x", ["--link"], known).boolean("link") is True
    assert parse_flags("x", ["--link=FALSE"], known).boolean("link") is False
    with pytest.raises(FlagError, match="Expecting boolean value for flag link, not: maybe"):
        parse_flags("x", ["--link=maybe"], known)
    with pytest.raises(FlagError, match="Missing a value on flag: link"):
        parse_flags("x", ["--link="], known)


def test_double_dash_ends_flags() -> None:
    assert parse_flags("copy", ["--from=a", "--", "--bogus"]).used == ("from",)


# --- one conversion per instruction ----------------------------------------------------------------------------------


def test_from() -> None:
    assert convert("FROM --platform=linux/amd64 alpine:3 AS Build") == From(
        location=convert("FROM --platform=linux/amd64 alpine:3 AS Build").location,
        base_name="alpine:3",
        stage_name="build",
        platform="linux/amd64",
    )
    assert refused("FROM a b").message == "FROM requires either one or three arguments"
    assert refused("FROM a AS 1bad").message == (
        'invalid name for build stage: "1bad", name can\'t start with a number or contain symbols'
    )


def test_location_carries_file_lines_and_text() -> None:
    parsed = parse_dockerfile("FROM scratch\nRUN a \\\n  b\n", "my.Dockerfile")
    run = node_to_instruction(parsed.nodes[1], parsed.filename)
    assert (run.location.file, run.location.start_line, run.location.end_line) == ("my.Dockerfile", 2, 3)
    assert "RUN a" in run.location.text


def test_run_forms() -> None:
    shell = convert("RUN make  all")
    assert isinstance(shell, Run) and shell.command == ("make  all",) and shell.prepend_shell
    exec_form = convert('RUN ["make", "all"]')
    assert isinstance(exec_form, Run) and exec_form.command == ("make", "all") and not exec_form.prepend_shell


def test_run_flags() -> None:
    run = convert("RUN --mount=type=cache,target=/x --mount=type=tmpfs,target=/t true")
    assert isinstance(run, Run) and run.mounts == ("type=cache,target=/x", "type=tmpfs,target=/t")
    assert refused("RUN --mount=from=$STAGE,target=/x true").message == (
        "'from' doesn't support variable expansion, define alias stage instead"
    )
    assert refused("RUN --network=bridge true").message.startswith("invalid network mode")


def test_copy_and_add() -> None:
    copy = convert("COPY --from=build --chown=$U:g a b /dest/")
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest, copy.from_, copy.chown) == (("a", "b"), "/dest/", "build", "$U:g")
    add = convert('ADD ["x.tar", "/y"]')
    assert isinstance(add, Add) and add.sources == ("x.tar",) and add.dest == "/y"
    chmod = convert("COPY --chmod=$MODE --link --exclude=*.md --exclude=tmp a /b")
    assert isinstance(chmod, Copy) and (chmod.chmod, chmod.link, chmod.exclude) == ("$MODE", True, ("*.md", "tmp"))
    assert refused("COPY --checksum=sha256:00 a /b").message == "Unknown flag: checksum"
    assert refused("ADD --parents a /b").message == "Unknown flag: parents"
    assert refused("COPY --link=maybe a /b").message == "Expecting boolean value for flag link, not: maybe"
    assert refused("ADD --from=x a /b").message == "Unknown flag: from"
    assert refused("COPY a").message.startswith("COPY requires at least two arguments")


def test_env_both_forms_keep_quotes_for_expansion() -> None:
    env = convert('ENV a=1 b="x y"')
    assert isinstance(env, Env) and env.pairs == (("a", "1"), ("b", '"x y"'))
    old = convert("ENV c $a d")
    assert isinstance(old, Env) and old.pairs == (("c", "$a d"),)
    assert refused("ENV =x").message == "ENV names can not be blank"
    assert refused("ENV --foo A=1").message == "Unknown flag: foo"


def test_arg() -> None:
    arg = convert("ARG a=1 b")
    assert isinstance(arg, Arg) and arg.pairs == (("a", "1"), ("b", None))
    assert refused("ARG").message == "ARG requires at least one argument"


def test_label_expose_volume_user_workdir() -> None:
    label = convert('LABEL "a b"="c d" e=f')
    assert isinstance(label, Label) and label.pairs == (('"a b"', '"c d"'), ("e", "f"))
    expose = convert("EXPOSE 80 8000-8002/udp")
    assert isinstance(expose, Expose) and expose.ports == ("80", "8000-8002/udp")
    volume = convert('VOLUME ["/a", "/b"]')
    assert isinstance(volume, Volume) and volume.paths == ("/a", "/b")
    assert convert("USER a:b") == User(location=convert("USER a:b").location, user="a:b")
    workdir = convert("WORKDIR /x")
    assert isinstance(workdir, Workdir) and workdir.path == "/x"
    assert refused("WORKDIR").message == "WORKDIR requires exactly one argument"


def test_cmd_entrypoint_shell() -> None:
    cmd = convert("CMD echo hi")
    assert isinstance(cmd, Cmd) and cmd.command == ("echo hi",) and cmd.prepend_shell
    empty = convert("CMD")
    assert isinstance(empty, Cmd) and empty.command == () and empty.prepend_shell
    entrypoint = convert('ENTRYPOINT ["a", "b"]')
    assert isinstance(entrypoint, Entrypoint) and entrypoint.command == ("a", "b")
    shell = convert('SHELL ["/bin/bash", "-c"]')
    assert isinstance(shell, Shell) and shell.shell == ("/bin/bash", "-c")
    assert refused("SHELL /bin/sh -c").message == "SHELL requires the arguments to be in JSON form"


def test_healthcheck() -> None:
    health = convert("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=3 CMD curl x")
    assert isinstance(health, Healthcheck)
    assert health.healthcheck == HealthcheckConfig(
        test=("CMD-SHELL", "curl x"), interval=90 * 10**9, timeout=500 * 10**6, start_period=2 * 10**9, retries=3
    )
    exec_form = convert('HEALTHCHECK CMD ["a", "b"]')
    assert isinstance(exec_form, Healthcheck) and exec_form.healthcheck.test == ("CMD", "a", "b")
    none = convert("HEALTHCHECK --interval=5s NONE")
    assert isinstance(none, Healthcheck) and none.healthcheck == HealthcheckConfig(test=("NONE",))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("HEALTHCHECK --interval=10 CMD a", 'time: missing unit in duration "10"'),
        ("HEALTHCHECK --interval=100us CMD a", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --interval=0s CMD a", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --timeout=-1s CMD a", 'Interval "timeout" cannot be less than 1ms'),
        ("HEALTHCHECK --retries=-1 CMD a", "--retries must be at least 1 (not -1)"),
        ("HEALTHCHECK --retries=x CMD a", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("HEALTHCHECK --start-interval=1s CMD a", "Unknown flag: start-interval"),
        ("HEALTHCHECK FOO a", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ],
)
def test_healthcheck_errors(line: str, message: str) -> None:
    error = refused(line)
    assert error.message == message
    assert error.instruction == "HEALTHCHECK"
    assert str(error).startswith("Dockerfile:1: HEALTHCHECK: ")


def test_stopsignal_maintainer_onbuild() -> None:
    signal = convert("STOPSIGNAL SIGKILL")
    assert isinstance(signal, StopSignal) and signal.signal == "SIGKILL"
    maintainer = convert("MAINTAINER me <me@x>")
    assert isinstance(maintainer, Maintainer) and maintainer.maintainer == "me <me@x>"
    onbuild = convert("ONBUILD   RUN   echo  hi")
    assert isinstance(onbuild, Onbuild) and onbuild.expression == "RUN   echo  hi"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ONBUILD ONBUILD ENV X=1", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
    ],
)
def test_onbuild_errors(line: str, message: str) -> None:
    assert refused(line).message == message


def test_unknown_instruction() -> None:
    error = refused("FOO bar")
    assert error.message == "unknown instruction: FOO"
    assert error.location is not None and error.location.start_line == 1


def test_heredocs_reach_the_instruction() -> None:
    """BuildKit syntax is always accepted (the project's BuildKit policy); tests/test_heredoc.py has the details."""
    parsed = parse_dockerfile("FROM scratch\nRUN <<EOF\necho hi\nEOF\n")
    run = node_to_instruction(parsed.nodes[1])
    assert isinstance(run, Run) and [doc.data for doc in run.heredocs] == ["echo hi\n"]


# --- stages ----------------------------------------------------------------------------------------------------------


def test_parse_stages_splits_meta_args_and_stages() -> None:
    parsed = parse_dockerfile("ARG A=1\nFROM scratch AS one\nENV X=1\nFROM one\nRUN true\n")
    meta_args, stages = parse_stages(parsed)
    assert [arg.pairs for arg in meta_args] == [(("A", "1"),)]
    assert [(stage.index, stage.name, len(stage.commands)) for stage in stages] == [(0, "one", 1), (1, "", 1)]


def test_instruction_before_from() -> None:
    with pytest.raises(InstructionError, match="no build stage in current context"):
        parse_stages(parse_dockerfile("ENV A=1\nFROM scratch\n"))


def test_parse_errors_in_any_stage_are_reported() -> None:
    with pytest.raises(InstructionError, match="Unknown flag: foo"):
        parse_stages(parse_dockerfile("FROM scratch AS a\nFROM scratch\nENV --foo A=1\n"))


# --- Go durations ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanoseconds", "formatted"),
    [
        ("1m30s", 90 * 10**9, "1m30s"),
        ("500ms", 500 * 10**6, "500ms"),
        ("1.5s", 1500 * 10**6, "1.5s"),
        ("90m", 5400 * 10**9, "1h30m0s"),
        ("1us", 1000, "1µs"),
        ("0", 0, "0s"),
    ],
)
def test_go_durations(text: str, nanoseconds: int, formatted: str) -> None:
    assert parse_go_duration(text) == nanoseconds
    assert format_go_duration(nanoseconds) == formatted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        (".s", 'time: invalid duration ".s"'),
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_go_duration(text)
