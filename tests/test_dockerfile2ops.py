"""Stages to a BuildPlan: ops, ExecOp env, config, history, pruning, ONBUILD and ARG scoping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import pytest

from buildkit_py.digest import Digest, digest_bytes
from buildkit_py.errors import DockerfileError, ExpansionError, ImageNotFound, InstructionError
from buildkit_py.frontend.dockerfile2ops import dockerfile_to_plan
from buildkit_py.frontend.parser import parse_dockerfile
from buildkit_py.frontend.plan import BuildPlan, ResolvedImage
from buildkit_py.image.config import DEFAULT_PATH, ContainerConfig, HistoryEntry, ImageConfig
from buildkit_py.solver.ops import Chown, ContextSource, CopyAction, ExecOp, FileOp, ImageSource, MkdirAction, Op

PATH = f"PATH={DEFAULT_PATH}"
T = TypeVar("T", bound=Op)
CONTEXT = ContextSource(name="context", path="/src", exclude=("*.log",))


class DictResolver:
    """Images known by name: test data for `resolve_image`."""

    def __init__(self, images: Mapping[str, ContainerConfig]) -> None:
        self.images = dict(images)
        self.asked: list[str] = []

    def __call__(self, ref: str) -> ResolvedImage:
        self.asked.append(ref)
        if ref not in self.images:
            raise ImageNotFound(f"no such image: {ref}")
        config = ImageConfig(
            config=self.images[ref],
            diff_ids=(Digest("sha256", "a" * 64),),
            history=(HistoryEntry(created="2024-01-01T00:00:00Z", created_by="base layer"),),
        )
        return ResolvedImage(ref=ref, image_id=digest_bytes(ref.encode(), "sha256"), config=config)


BASE = ContainerConfig(
    env=("PATH=/usr/bin:/bin", "LANG=C"),
    cmd=("sh",),
    working_dir="/home",
    user="app",
    on_build=(),
)


def plan(
    text: str,
    *,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    images: Mapping[str, ContainerConfig] | None = None,
    network: str = "host",
) -> BuildPlan:
    return dockerfile_to_plan(
        parse_dockerfile(text),
        context=CONTEXT,
        build_args=build_args or {},
        target=target,
        resolve_image=DictResolver(images if images is not None else {"base": BASE}),
        network=network,
    )


def ops_of(result: BuildPlan, kind: type[T]) -> list[T]:
    found = [result.graph.op(digest) for digest in result.graph.topological()]
    return [op for op in found if isinstance(op, kind)]


def the_exec(result: BuildPlan) -> ExecOp:
    (op,) = ops_of(result, ExecOp)
    return op


# --- FROM and stages -------------------------------------------------------------------------------------------------


def test_scratch_gets_path_in_config() -> None:
    result = plan("FROM scratch\nENV A=1\n")
    assert result.config.env == (PATH, "A=1")
    assert result.graph.op(result.target).kind == "scratch"
    assert [step.created_by for step in result.steps] == ["ENV A=1"]
    assert result.steps[0].op is None


def test_base_image_seeds_config_and_base() -> None:
    result = plan("FROM base\nRUN make\n")
    image = ops_of(result, ImageSource)
    assert [op.ref for op in image] == ["base"]
    assert result.base.diff_ids == (Digest("sha256", "a" * 64),)
    run = the_exec(result)
    assert run.rootfs == image[0].digest
    assert run.args == ("/bin/sh", "-c", "make")
    assert run.env == ("PATH=/usr/bin:/bin", "LANG=C")
    assert (run.cwd, run.user) == ("/home", "app")
    assert result.config.cmd == ("sh",)


def test_base_without_path_gets_default_path() -> None:
    result = plan("FROM bare\n", images={"bare": ContainerConfig(env=("A=1",))})
    assert result.config.env == ("A=1", PATH)


def test_unknown_image_is_an_instruction_error_at_from() -> None:
    with pytest.raises(InstructionError, match="no such image: nope") as caught:
        plan("FROM scratch\nFROM nope\n")
    assert caught.value.location is not None and caught.value.location.start_line == 2


def test_from_earlier_stage_case_insensitive_and_history_chain() -> None:
    result = plan("FROM base AS Build\nENV A=1\nRUN make\nFROM build\nENV B=2\n")
    assert result.config.env == ("PATH=/usr/bin:/bin", "LANG=C", "A=1", "B=2")
    assert [step.created_by for step in result.steps] == ["ENV A=1", "RUN /bin/sh -c make # buildkit", "ENV B=2"]
    assert result.target == the_exec(result).digest
    assert result.base.history[0].created_by == "base layer"


def test_from_index_is_an_image_name_like_docker() -> None:
    with pytest.raises(InstructionError, match="no such image: 0"):
        plan("FROM scratch\nFROM 0\n")


def test_platform() -> None:
    assert plan("FROM --platform=linux/amd64 scratch\nLABEL a=b\n").config.env == (PATH,)
    with pytest.raises(InstructionError, match='platform "linux/arm64" is not supported'):
        plan("FROM --platform=linux/arm64 scratch\n")


def test_only_from_scratch_generates_no_image() -> None:
    with pytest.raises(InstructionError, match=r"^No image was generated\. Is your Dockerfile empty\?$"):
        plan("FROM scratch\n")
    with pytest.raises(InstructionError, match="No image was generated"):
        plan("FROM scratch AS empty\nFROM empty\n")


def test_target_and_pruning() -> None:
    text = "FROM base AS a\nRUN one\nFROM base AS b\nRUN two\nFROM scratch AS c\nCOPY --from=a /x /x\n"
    result = plan(text, target="C")
    assert result.stage_name == "c"
    runs = ops_of(result, ExecOp)
    assert [op.args[-1] for op in runs] == ["one"]  # stage b is pruned
    assert set(result.stage_targets) == {"a", "c"}
    only_a = plan(text, target="a")
    assert [op.args[-1] for op in ops_of(only_a, ExecOp)] == ["one"]


def test_unknown_target_lists_stages() -> None:
    with pytest.raises(InstructionError, match=r"failed to reach build target nosuch in Dockerfile \(stages: a, b\)"):
        plan("FROM scratch AS a\nFROM scratch AS b\n", target="nosuch")


def test_duplicate_stage_name() -> None:
    with pytest.raises(InstructionError, match="a stage name already used"):
        plan("FROM scratch AS a\nFROM scratch AS A\n")


def test_op_meta_names() -> None:
    single = plan("FROM base\nENV A=1\nRUN make\n")
    assert single.graph.meta(single.target).name == "[3/3] RUN make"
    multi = plan("FROM base AS build\nRUN make\nFROM scratch\nCOPY --from=build /a /b\n")
    assert multi.graph.meta(multi.target).name == "[stage-1 2/2] COPY --from=build /a /b"
    run = the_exec(multi)
    meta = multi.graph.meta(run.digest)
    assert (meta.name, meta.stage) == ("[build 2/2] RUN make", "build")
    assert meta.location is not None and meta.location.start_line == 2


# --- ARG scoping -----------------------------------------------------------------------------------------------------


def test_global_args_in_from_and_redeclared() -> None:
    text = "ARG BASE=base\nARG OTHER=o\nFROM $BASE\nRUN echo $OTHER\nARG OTHER\nRUN echo $OTHER\n"
    result = plan(text)
    first, second = ops_of(result, ExecOp)
    assert not any(entry.startswith("OTHER=") for entry in first.env)
    assert "OTHER=o" in second.env
    assert [op.ref for op in ops_of(result, ImageSource)] == ["base"]


def test_build_arg_overrides_meta_and_stage_defaults() -> None:
    text = "ARG BASE=nope\nFROM $BASE\nARG V=default\nRUN x\n"
    result = plan(text, build_args={"BASE": "base", "V": "cli", "UNUSED": "1"})
    assert "V=cli" in the_exec(result).env
    assert result.used_build_args == {"BASE", "V"}
    assert result.unused_build_args == {"UNUSED"}


def test_args_are_in_run_env_not_in_image_env_and_env_wins() -> None:
    result = plan("FROM base\nARG A1=argval\nARG EMPTY\nENV E1=envval A1=envwins\nRUN env\n")
    run = the_exec(result)
    assert run.env == ("PATH=/usr/bin:/bin", "LANG=C", "E1=envval", "A1=envwins")
    assert result.config.env == ("PATH=/usr/bin:/bin", "LANG=C", "E1=envval", "A1=envwins")
    assert result.steps[-1].created_by == "RUN |2 A1=envwins EMPTY= /bin/sh -c env # buildkit"


def test_arg_values_change_run_cache_identity() -> None:
    one = the_exec(plan("FROM base\nARG V\nRUN make\n", build_args={"V": "1"}))
    two = the_exec(plan("FROM base\nARG V\nRUN make\n", build_args={"V": "2"}))
    assert one.digest != two.digest


def test_predefined_proxy_args_need_no_declaration() -> None:
    """BuildKit's rule: given to RUN, but not part of the step (its digest and cache key) nor of the history."""
    result = plan("FROM base\nRUN env\n", build_args={"HTTP_PROXY": "p", "all_proxy": "socks5://q"})
    run = the_exec(result)
    # as BuildKit's llb.ProxyEnv: every proxy under both spellings
    assert run.proxy_env == ("HTTP_PROXY=p", "http_proxy=p", "ALL_PROXY=socks5://q", "all_proxy=socks5://q")
    assert not any("PROXY" in entry.upper() for entry in run.env)
    assert run.digest == the_exec(plan("FROM base\nRUN env\n", build_args={"HTTP_PROXY": "other"})).digest
    assert run.digest == the_exec(plan("FROM base\nRUN env\n")).digest
    assert result.unused_build_args == frozenset()
    assert not any("HTTP_PROXY" in entry for entry in result.config.env)
    assert "PROXY" not in result.steps[-1].created_by


def test_declared_proxy_arg_is_an_ordinary_arg() -> None:
    result = plan("FROM base\nARG HTTP_PROXY\nRUN env\n", build_args={"HTTP_PROXY": "p"})
    run = the_exec(result)
    assert "HTTP_PROXY=p" in run.env and run.proxy_env == ("http_proxy=p",)
    assert run.digest != the_exec(plan("FROM base\nARG HTTP_PROXY\nRUN env\n", build_args={"HTTP_PROXY": "o"})).digest
    assert result.steps[-1].created_by == "RUN |1 HTTP_PROXY=p /bin/sh -c env # buildkit"


def test_child_stage_inherits_env_not_args() -> None:
    result = plan("FROM base AS first\nARG X=1\nENV E=2\nFROM first\nRUN echo\n")
    run = the_exec(result)
    assert "E=2" in run.env
    assert not any(entry.startswith("X=") for entry in run.env)


def test_one_environment_per_instruction() -> None:
    result = plan("FROM scratch\nENV a=1\nENV a=2 b=$a\nENV c $a d\n")
    assert result.config.env == (PATH, "a=2", "b=1", "c=2 d")
    assert [step.created_by for step in result.steps][-1] == "ENV c=2 d"


def test_required_variable_error_has_location() -> None:
    with pytest.raises(ExpansionError) as caught:
        plan("FROM scratch\nENV A=${NOPE:?required}\n")
    error = caught.value
    assert error.message == 'failed to process "${NOPE:?required}": NOPE: required'
    assert error.instruction == "ENV"
    assert error.location is not None and error.location.start_line == 2


# --- RUN, COPY, ADD, WORKDIR -----------------------------------------------------------------------------------------


def test_run_exec_form_shell_and_network() -> None:
    result = plan('FROM base\nSHELL ["/bin/bash", "-c"]\nRUN echo hi\nRUN ["ls", "-l"]\n', network="none")
    bash, ls = ops_of(result, ExecOp)
    if bash.args[0] != "/bin/bash":
        bash, ls = ls, bash
    assert bash.args == ("/bin/bash", "-c", "echo hi")
    assert ls.args == ("ls", "-l")
    assert bash.network == "none"
    assert ls.rootfs == bash.digest
    assert result.steps[-1].created_by == "RUN ls -l # buildkit"


def test_run_does_not_expand_variables() -> None:
    result = plan("FROM base\nARG V=1\nRUN echo $V\n")
    assert the_exec(result).args[-1] == "echo $V"


def test_copy_from_context() -> None:
    result = plan("FROM base\nWORKDIR /app\nARG U=1000\nCOPY --chown=$U:g a b ./\nCOPY c d\n")
    copy_op = result.graph.op(result.steps[-2].op) if result.steps[-2].op else None
    assert isinstance(copy_op, FileOp)
    first, second = copy_op.actions
    assert isinstance(first, CopyAction) and isinstance(second, CopyAction)
    assert (first.src, second.src, first.dest, first.dest_is_dir) == ("a", "b", "/app/", True)
    assert first.chown == Chown("1000", "g")
    assert first.exclude == ("*.log",)
    assert first.source == CONTEXT.digest
    assert not first.attempt_unpack
    last = result.graph.op(result.target)
    assert isinstance(last, FileOp)
    (action,) = last.actions
    assert isinstance(action, CopyAction) and (action.dest, action.dest_is_dir) == ("/app/d", False)
    assert result.steps[-1].created_by == "COPY c d # buildkit"
    assert result.steps[-1].parent == copy_op.digest


def test_copy_several_sources_needs_a_slash() -> None:
    with pytest.raises(InstructionError, match="When using COPY with more than one source file, the destination must"):
        plan("FROM base\nCOPY a b .\n")


def test_copy_from_stage_index_and_image() -> None:
    text = "FROM base AS s\nRUN make\nFROM scratch\nCOPY --from=S /a /a\nCOPY --from=0 /b /b\nCOPY --from=base /c /c\n"
    result = plan(text)
    run = the_exec(result)
    actions = [action for op in ops_of(result, FileOp) for action in op.actions if isinstance(action, CopyAction)]
    assert [action.source for action in actions[:2]] == [run.digest, run.digest]
    image = [op for op in ops_of(result, ImageSource)]
    assert actions[2].source in {op.digest for op in image}
    assert all(action.exclude == () for action in actions)


def test_copy_from_is_not_expanded_and_unknown_names_are_images() -> None:
    with pytest.raises(InstructionError, match=r"invalid from flag value \$S: no such image: \$S"):
        plan("FROM base\nARG S=0\nCOPY --from=$S /a /b\n")
    with pytest.raises(InstructionError, match="invalid from flag value 1: index out of bounds"):
        plan("FROM base\nCOPY --from=1 /a /b\n")


def test_add_unpacks_local_sources_and_downloads_urls_without_unpacking() -> None:
    result = plan("FROM base\nADD x.tar /y/\n")
    op = result.graph.op(result.target)
    assert isinstance(op, FileOp)
    (action,) = op.actions
    assert isinstance(action, CopyAction) and action.attempt_unpack
    remote = plan("FROM base\nADD https://example.com/x.tar /y\n")
    op = remote.graph.op(remote.target)
    assert isinstance(op, FileOp)
    (action,) = op.actions
    assert isinstance(action, CopyAction) and not action.attempt_unpack and action.src == "x.tar"
    with pytest.raises(InstructionError, match="Source can't be a URL for COPY") as caught:
        plan("FROM base\nCOPY https://example.com/x /y\n")
    assert caught.value.location is not None and caught.value.location.start_line == 2


def test_workdir_is_relative_cleaned_and_makes_a_dir_owned_by_root() -> None:
    result = plan("FROM scratch\nUSER 1000\nWORKDIR /a/b\nWORKDIR c/../d\nENV D=/e\nWORKDIR $D\n")
    assert result.config.working_dir == "/e"
    mkdirs = [action for op in ops_of(result, FileOp) for action in op.actions if isinstance(action, MkdirAction)]
    assert [action.path for action in mkdirs] == ["/a/b", "/a/b/d", "/e"]
    assert all(action.chown is None for action in mkdirs)
    workdirs = [step for step in result.steps if step.created_by.startswith("WORKDIR")]
    assert [step.created_by for step in workdirs] == ["WORKDIR /a/b", "WORKDIR /a/b/d", "WORKDIR /e"]
    assert all(step.op is not None and step.parent is not None for step in workdirs)


def test_relative_workdir_without_previous_starts_at_root() -> None:
    assert plan("FROM scratch\nWORKDIR app\n").config.working_dir == "/app"


# --- metadata --------------------------------------------------------------------------------------------------------


def test_cmd_entrypoint_interplay() -> None:
    inherited = plan('FROM base\nENTRYPOINT ["z"]\n')
    assert (inherited.config.entrypoint, inherited.config.cmd) == (("z",), None)
    same_stage = plan('FROM base\nCMD ["x"]\nENTRYPOINT ["y"]\n')
    assert (same_stage.config.entrypoint, same_stage.config.cmd) == (("y",), ("x",))
    empty = plan("FROM scratch\nCMD\n")
    assert empty.config.cmd == ("/bin/sh", "-c")


def test_metadata_history_texts() -> None:
    text = (
        'FROM scratch\nLABEL "a b"="c d" e=f\nEXPOSE 443/tcp 80 8000-8001/UDP\nVOLUME /data /x\nUSER 1000\n'
        'SHELL ["/bin/bash", "-c"]\nCMD echo hi\nENTRYPOINT ["ep"]\nSTOPSIGNAL SIGKILL\n'
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=3 CMD curl x\n"
        "ONBUILD   RUN   echo  hi\nMAINTAINER me <me@x>\nARG A=1 B\n"
    )
    result = plan(text)
    assert [step.created_by for step in result.steps] == [
        "LABEL a b=c d e=f",
        "EXPOSE map[443/tcp:{} 80/tcp:{} 8000/udp:{} 8001/udp:{}]",
        "VOLUME [/data /x]",
        "USER 1000",
        "SHELL [/bin/bash -c]",
        'CMD ["/bin/bash" "-c" "echo hi"]',
        'ENTRYPOINT ["ep"]',
        "STOPSIGNAL SIGKILL",
        'HEALTHCHECK &{["CMD-SHELL" "curl x"] "1m30s" "500ms" "2s" \'\\x03\'}',
        "ONBUILD RUN   echo  hi",
        "MAINTAINER me <me@x>",
        "ARG A=1 B",
    ]
    assert all(step.op is None for step in result.steps)
    config = result.config
    assert config.labels == (("a b", "c d"), ("e", "f"))
    assert config.exposed_ports == ("443/tcp", "80/tcp", "8000/udp", "8001/udp")
    assert config.volumes == ("/data", "/x")
    assert config.on_build == ("RUN   echo  hi",)
    assert config.stop_signal == "SIGKILL"
    assert result.author == "me <me@x>"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("EXPOSE abc", "Invalid containerPort: abc"),
        ("EXPOSE 80-70", "Invalid containerPort: 80-70"),
        ("STOPSIGNAL FOO", "Invalid signal: FOO"),
        ('VOLUME [""]', "VOLUME specified can not be an empty string"),
    ],
)
def test_dispatch_errors(line: str, message: str) -> None:
    with pytest.raises(InstructionError) as caught:
        plan(f"FROM scratch\n{line}\n")
    assert caught.value.message == message
    assert caught.value.location is not None and caught.value.location.start_line == 2


# --- ONBUILD ---------------------------------------------------------------------------------------------------------


def test_onbuild_triggers_run_first_and_are_cleared() -> None:
    images = {"parent": ContainerConfig(env=(PATH,), on_build=("ENV FROMBASE=1", "RUN echo $FROMBASE"))}
    result = plan("FROM parent\nENV MINE=1\n", images=images)
    assert result.config.on_build == ()
    assert [step.created_by for step in result.steps] == [
        "ENV FROMBASE=1",
        "RUN /bin/sh -c echo $FROMBASE # buildkit",
        "ENV MINE=1",
    ]
    assert "FROMBASE=1" in the_exec(result).env
    assert result.graph.meta(the_exec(result).digest).location is not None


def test_onbuild_of_a_stage_triggers_in_its_child() -> None:
    result = plan("FROM scratch AS a\nONBUILD ENV X=1\nFROM a\n")
    assert result.config.env == (PATH, "X=1")
    assert result.config.on_build == ()


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ("ONBUILD ENV X=1", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("MAINTAINER x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ],
)
def test_forbidden_triggers_in_a_base(trigger: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        plan("FROM parent\n", images={"parent": ContainerConfig(on_build=(trigger,))})


def test_own_onbuild_is_kept_after_triggers() -> None:
    images = {"parent": ContainerConfig(on_build=("ENV A=1",))}
    result = plan("FROM parent\nONBUILD ENV B=2\n", images=images)
    assert result.config.on_build == ("ENV B=2",)


def test_bytes_that_are_not_utf8_reach_the_op_and_its_digest() -> None:
    """Found by tests/test_fuzz_frontend.py: a latin-1 byte in a RUN line made digesting the op raise
    UnicodeEncodeError. The byte reaches the process as it was, tells two ops apart, and shows as `\\xe9`."""
    latin1 = dockerfile_to_plan(
        parse_dockerfile(b"FROM base\nRUN echo caf\xe9\n"),
        context=CONTEXT,
        build_args={},
        target=None,
        resolve_image=DictResolver({"base": BASE}),
    )
    other = plan("FROM base\nRUN echo caf\udce8\n")
    run = the_exec(latin1)
    assert [arg.encode("utf-8", "surrogateescape") for arg in run.args] == [b"/bin/sh", b"-c", b"echo caf\xe9"]
    assert run.digest != the_exec(other).digest
    assert latin1.graph.meta(run.digest).name == "[2/2] RUN echo caf\\xe9"
