"""One dispatcher per instruction: a Dockerfile's metadata instruction and the same `--change` string give the same
config and are refused with the same message; `--change` allows exactly what Docker 20.10 allows."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest

from buildkit_py.digest import digest_bytes
from buildkit_py.errors import DockerfileError, ImageNotFound, InstructionError, SourceLocation
from buildkit_py.frontend.changes import ALLOWED_CHANGES, apply_changes
from buildkit_py.frontend.dispatch import apply_instruction
from buildkit_py.frontend.dockerfile2ops import dockerfile_to_plan
from buildkit_py.frontend.instructions import Cmd, Entrypoint, Env, Maintainer, Run, StopSignal
from buildkit_py.frontend.parser import parse_dockerfile
from buildkit_py.frontend.plan import ResolvedImage
from buildkit_py.image.config import ContainerConfig, ImageConfig
from buildkit_py.solver.ops import ContextSource

# The image both paths start from: the build gets it as its FROM, `--change` as the config to change.
BASE = ContainerConfig(
    env=("PATH=/usr/bin:/bin", "HOME=/root"),
    cmd=("sh",),
    working_dir="/srv",
    labels=(("base", "1"),),
    exposed_ports=("22/tcp",),
    volumes=("/var/lib",),
    on_build=(),
)


def resolve_base(ref: str) -> ResolvedImage:
    if ref != "base":
        raise ImageNotFound(f"no such image: {ref}")
    return ResolvedImage(ref=ref, image_id=digest_bytes(b"base", "sha256"), config=ImageConfig(config=BASE))


def built_config(lines: Sequence[str]) -> ContainerConfig:
    dockerfile = "FROM base\n" + "".join(f"{line}\n" for line in lines)
    return dockerfile_to_plan(
        parse_dockerfile(dockerfile),
        context=ContextSource(name="context", path="."),
        build_args={},
        target=None,
        resolve_image=resolve_base,
    ).config


# Every instruction `--change` allows, in its forms; the build and `--change` must agree on each.
SAME_RESULT: dict[str, tuple[str, ...]] = {
    "env": ("ENV A=1 B=$HOME/x",),
    "env-legacy-form": ("ENV A one two",),
    "env-sees-its-own-values-only-after": ("ENV A=1", "ENV A=2 B=$A C=${NOPE:-d}"),
    "env-replaces-in-place": ("ENV HOME=/home/me",),
    "label": ('LABEL "a b"="c d" base=2', "LABEL x=$HOME"),
    "expose": ("EXPOSE 80 53/udp 8000-8002/TCP 22",),
    "volume": ('VOLUME ["/data", "/logs"]', "VOLUME $HOME /var/lib"),
    "user": ("USER daemon:daemon",),
    "user-expanded": ("ENV U=nobody", "USER $U"),
    "workdir-relative": ("WORKDIR a/./b/../c",),
    "workdir-absolute": ("WORKDIR /opt/app",),
    "workdir-from-env": ("WORKDIR $HOME", "WORKDIR work"),
    "cmd-exec": ('CMD ["/bin/app", "--flag"]',),
    "cmd-shell": ("CMD echo $HOME",),
    "cmd-empty": ("CMD",),
    "entrypoint-clears-the-inherited-cmd": ('ENTRYPOINT ["/init"]',),
    "entrypoint-keeps-a-cmd-set-before": ('CMD ["x"]', "ENTRYPOINT /init --flag"),
    "cmd-after-entrypoint": ("ENTRYPOINT /init", 'CMD ["y"]'),
    "healthcheck": ("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=3 CMD curl x",),
    "healthcheck-exec-then-none": ('HEALTHCHECK CMD ["a", "b"]', "HEALTHCHECK --interval=5s NONE"),
    "onbuild": ("ONBUILD RUN echo child", "ONBUILD   ENV X=1"),
    "continuation": ("ENV A=1 \\\n    B=2",),
}


def test_the_table_covers_every_allowed_change() -> None:
    keywords = {line.split()[0].lower() for lines in SAME_RESULT.values() for line in lines}
    assert keywords == ALLOWED_CHANGES


@pytest.mark.parametrize("name", sorted(SAME_RESULT))
def test_build_and_change_give_the_same_config(name: str) -> None:
    lines = SAME_RESULT[name]
    changed = apply_changes(BASE, lines)
    assert changed == built_config(lines)
    assert changed != BASE or name == "env-replaces-in-place"


def test_each_change_applies_in_turn() -> None:
    """Several --change strings are one Dockerfile: each sees the ENV the ones before it set."""
    one_by_one = BASE
    for line in SAME_RESULT["workdir-from-env"]:
        one_by_one = apply_changes(one_by_one, [line])
    assert one_by_one == apply_changes(BASE, SAME_RESULT["workdir-from-env"])
    assert one_by_one.working_dir == "/root/work"


# What the build refuses, `--change` refuses with the same message: the checks of expansion, of each dispatcher,
# and of the instruction's own syntax.
SAME_REFUSAL = {
    "blank-env-name": "ENV =x",
    "required-var": "ENV A=${NOPE:?required}",
    "bad-port": "EXPOSE abc",
    "port-out-of-range": "EXPOSE 99999",
    "port-range-backwards": "EXPOSE 80-79",
    "bad-protocol": "EXPOSE 80/foo",
    "empty-volume": 'VOLUME [""]',
    "empty-workdir": 'WORKDIR ""',
    "workdir-no-arg": "WORKDIR",
    "retries": "HEALTHCHECK --retries=0 CMD a",
    "duration-unit": "HEALTHCHECK --interval=10 CMD a",
    "onbuild-onbuild": "ONBUILD ONBUILD ENV X=1",
    "onbuild-from": "ONBUILD FROM x",
    "unknown-flag": "ENV --foo A=1",
    "label-without-value": "LABEL a",
}


@pytest.mark.parametrize("name", sorted(SAME_REFUSAL))
def test_change_refuses_what_the_build_refuses(name: str) -> None:
    line = SAME_REFUSAL[name]
    with pytest.raises(DockerfileError) as in_build:
        built_config([line])
    with pytest.raises(DockerfileError) as in_change:
        apply_changes(BASE, ["USER x", line])
    assert type(in_change.value) is type(in_build.value)
    assert in_change.value.message == in_build.value.message
    assert in_change.value.instruction == in_build.value.instruction
    assert in_change.value.location is not None and in_build.value.location is not None
    assert (in_change.value.location.file, in_change.value.location.start_line) == ("--change", 2)
    assert in_change.value.location.text == in_build.value.location.text == line


def test_stopsignal_is_validated_where_it_is_allowed() -> None:
    """STOPSIGNAL is not a --change (Docker 20.10 refuses it there), but its dispatcher is shared all the same."""
    with pytest.raises(InstructionError, match="stopsignal is not a valid change command"):
        apply_changes(BASE, ["STOPSIGNAL SIGINT"])
    with pytest.raises(InstructionError) as in_build:
        built_config(["STOPSIGNAL FOO"])
    assert in_build.value.message == "Invalid signal: FOO"
    location = in_build.value.location
    assert location is not None
    with pytest.raises(InstructionError) as direct:
        apply_instruction(BASE, StopSignal(location=location, signal="FOO"))
    assert direct.value.message == "Invalid signal: FOO"
    assert apply_instruction(BASE, StopSignal(location=location, signal="sigkill")).config.stop_signal == "sigkill"


def test_refusals_come_before_any_change_is_applied() -> None:
    """As moby's BuildFromConfig: every keyword is checked, then every instruction parsed, then they are applied."""
    with pytest.raises(InstructionError, match="run is not a valid change command"):
        apply_changes(BASE, ["ENV =x", "RUN true"])
    with pytest.raises(InstructionError, match="requires exactly one argument"):
        apply_changes(BASE, ["EXPOSE 99999", "WORKDIR"])


def test_absolute_workdir_is_kept_as_written_by_change_and_cleaned_by_the_build() -> None:
    """Docker's build cleans WORKDIR when it creates the step's container; `docker import --change` creates none
    and keeps `/a/../b` (both checked against Docker 20.10 in test_config_vs_docker.py)."""
    assert apply_changes(BASE, ["WORKDIR /a/../b"]).working_dir == "/a/../b"
    assert apply_changes(BASE, ["WORKDIR //x/"]).working_dir == "//x/"
    assert built_config(["WORKDIR /a/../b"]).working_dir == "/b"
    assert built_config(["WORKDIR //x/"]).working_dir == "/x"


def test_no_changes_is_the_config_itself() -> None:
    assert apply_changes(BASE, []) is BASE


def test_an_escape_directive_applies_to_the_changes_after_it() -> None:
    config = apply_changes(ContainerConfig(), ["# escape=`", "ENV A=`$B C=d"])
    assert config.env == ("A=$B", "C=d")


WHERE = SourceLocation("x", 1, 1, "")


def test_the_dispatchers_history_text_and_stage_state() -> None:
    change = apply_instruction(ContainerConfig(), Env(location=WHERE, pairs=(("A", "1"), ("B", "2"))))
    assert change.created_by == "ENV A=1 B=2" and not change.cmd_set and change.author is None
    bash = ContainerConfig(shell=("/bin/bash", "-c"))
    cmd = apply_instruction(bash, Cmd(location=WHERE, command=("x",), prepend_shell=True))
    assert cmd.config.cmd == ("/bin/bash", "-c", "x") and cmd.cmd_set
    assert cmd.created_by == 'CMD ["/bin/bash" "-c" "x"]'
    entrypoint = Entrypoint(location=WHERE, command=("e",), prepend_shell=False)
    kept = apply_instruction(cmd.config, entrypoint, cmd_set=cmd.cmd_set)
    assert kept.config.cmd == ("/bin/bash", "-c", "x") and kept.cmd_set
    assert apply_instruction(cmd.config, entrypoint).config.cmd is None
    author = apply_instruction(ContainerConfig(), Maintainer(location=WHERE, maintainer="me"))
    assert author.author == "me" and author.config == ContainerConfig() and author.created_by == "MAINTAINER me"
    with pytest.raises(InstructionError, match="RUN is not allowed here"):
        apply_instruction(ContainerConfig(), Run(location=WHERE, command=("x",), prepend_shell=True))


def test_the_image_package_never_imports_the_frontend() -> None:
    """Layering: image formats know nothing of Dockerfiles; the CLI applies --change and hands over the config."""
    package = Path(__file__).resolve().parents[1] / "buildkit_py" / "image"
    for source in sorted(package.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert "frontend" not in module, f"{source.name} imports {module}"
            elif isinstance(node, ast.Import):
                assert all("frontend" not in alias.name for alias in node.names), source.name
