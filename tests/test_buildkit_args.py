"""BuildKit's build-time arguments and contexts: the automatic platform ARGs, FROM --platform and --platform,
proxy build args, named contexts (--build-context), and the syntax directive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BASE_IMAGE
from test_heredoc import image_files

from buildkit_py.builder import build
from buildkit_py.errors import BuildError, ContextError, DockerfileSyntaxError, InstructionError
from buildkit_py.frontend.dockerfile2ops import dockerfile_to_plan
from buildkit_py.frontend.named_contexts import ImageContext, LocalContext, parse_build_contexts
from buildkit_py.frontend.parser import parse_dockerfile
from buildkit_py.frontend.plan import BuildPlan
from buildkit_py.frontend.platforms import normalize_platform
from buildkit_py.frontend.syntax import check_syntax, is_own_frontend
from buildkit_py.solver.ops import ContextSource, ExecOp

CONTEXT = ContextSource(name="context", path="/src")


def _plan(text: str, build_args: dict[str, str] | None = None, **options: object) -> BuildPlan:
    def no_images(ref: str) -> object:
        raise InstructionError(f"no image {ref} in this test")

    return dockerfile_to_plan(
        parse_dockerfile(text),
        context=CONTEXT,
        build_args=build_args or {},
        target=None,
        resolve_image=no_images,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def _last_exec(plan: BuildPlan) -> ExecOp:
    op = plan.graph.op(plan.target)
    assert isinstance(op, ExecOp)
    return op


# --- automatic platform ARGs -----------------------------------------------------------------------------------------


def test_platform_args_in_global_scope_and_after_arg() -> None:
    plan = _plan(
        "FROM --platform=$BUILDPLATFORM scratch AS build\n"
        "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH TARGETSTAGE\n"
        "RUN true\n"
    )
    env = _last_exec(plan).env
    for entry in (
        "TARGETPLATFORM=linux/amd64",
        "TARGETOS=linux",
        "TARGETARCH=amd64",
        "TARGETVARIANT=",
        "BUILDPLATFORM=linux/amd64",
        "BUILDARCH=amd64",
        "TARGETSTAGE=build",
    ):
        assert entry in env
    assert plan.steps[-1].created_by.startswith("RUN |7 TARGETPLATFORM=linux/amd64 TARGETOS=linux TARGETARCH=amd64 ")


def test_platform_args_need_their_arg_in_a_stage() -> None:
    env = _last_exec(_plan("FROM scratch\nRUN true\n")).env
    assert not any(entry.startswith(("TARGET", "BUILD")) for entry in env)


def test_platform_arg_in_from_and_a_dockerfile_arg_overriding_it() -> None:
    with pytest.raises(InstructionError, match="no image base-linux-amd64 in this test"):
        _plan("FROM base-${TARGETOS}-$BUILDARCH\n")
    with pytest.raises(InstructionError, match="no image base-custom in this test"):
        _plan("ARG TARGETARCH=custom\nFROM base-${TARGETARCH}\n")
    env = _last_exec(_plan("ARG TARGETARCH=custom\nFROM scratch\nARG TARGETARCH\nRUN true\n")).env
    assert "TARGETARCH=custom" in env


def test_build_arg_overrides_platform_arg_and_frontend_args_are_not_unused() -> None:
    plan = _plan(
        "FROM scratch\nARG TARGETARCH\nRUN true\n",
        build_args={"TARGETARCH": "arm64", "BUILDKIT_SYNTAX": "docker/dockerfile:1", "TARGETOS": "linux"},
    )
    assert "TARGETARCH=arm64" in _last_exec(plan).env
    assert plan.unused_build_args == frozenset()


@pytest.mark.parametrize("platform", ["$BUILDPLATFORM", "${TARGETPLATFORM}", "linux/amd64", "linux/x86_64", "amd64"])
def test_from_platform_accepts_amd64(platform: str) -> None:
    _plan(f"FROM --platform={platform} scratch\nRUN true\n")


@pytest.mark.parametrize(
    ("platform", "message"),
    [
        ("linux/arm64", 'platform "linux/arm64" is not supported: only linux/amd64 images are built'),
        ("windows/amd64", 'platform "windows/amd64" is not supported: only linux/amd64 images are built'),
        ("$BULIDPLATFORM", "empty platform value from expression $BULIDPLATFORM"),
    ],
)
def test_from_platform_refuses_others(platform: str, message: str) -> None:
    with pytest.raises(InstructionError) as caught:
        _plan(f"FROM scratch\nFROM --platform={platform} scratch\n")
    assert caught.value.message == message
    assert str(caught.value).startswith("Dockerfile:2: FROM: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("LINUX/AMD64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("x86_64", "linux/amd64"),
        ("amd64", "linux/amd64"),
        ("linux/arm64", None),
        ("linux/aarch64", None),
        ("i686", None),
        ("linux/amd64/v3", None),
        ("", None),
        ("darwin/amd64", None),
    ],
)
def test_normalize_platform(text: str, expected: str | None) -> None:
    assert normalize_platform(text) == expected


# --- proxies ---------------------------------------------------------------------------------------------------------


def test_proxy_args_reach_run_but_not_cache_or_history(base_store: object, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f'FROM {BASE_IMAGE}\nRUN echo "$HTTP_PROXY $no_proxy" > /proxy\n')
    first = build(
        tmp_path,
        tags=["test/proxy:1"],
        build_args={"HTTP_PROXY": "http://a:1", "no_proxy": "x"},
        network="none",
        store=base_store,
    )  # type: ignore[arg-type]
    assert image_files(base_store, "test/proxy:1")["/proxy"] == b"http://a:1 x\n"
    assert all("http://a:1" not in entry.created_by for entry in first.config.history)
    assert not any("PROXY" in entry.upper() for entry in first.config.config.env)
    again = build(tmp_path, build_args={"HTTP_PROXY": "http://b:2"}, network="none", store=base_store)  # type: ignore[arg-type]
    assert again.stats.executed == set()
    assert again.image_id == first.image_id


# --- named contexts --------------------------------------------------------------------------------------------------


def test_parse_build_contexts(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / ".dockerignore").write_text("secret\n")
    contexts = parse_build_contexts(["alpine=docker-image://busybox:1", "docker.io/library/base:latest=dir"], tmp_path)
    assert contexts == {
        "alpine": ImageContext("busybox:1"),
        "base": LocalContext((tmp_path / "dir").resolve(), ("secret",)),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nothing", "invalid --build-context 'nothing'"),
        ("x=", "invalid --build-context 'x='"),
        ("x=missing-dir", "--build-context x: missing-dir is not a folder"),
        ("x=https://example.invalid/repo.git", "unsupported --build-context x=https://example.invalid/repo.git"),
        ("x=docker-image://UPPER", "invalid --build-context x"),
    ],
)
def test_bad_build_context(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ContextError, match=message.replace(".", r"\.").replace("?", r"\?")):
        parse_build_contexts([text], tmp_path)


def test_named_contexts(base_store: object, tmp_path: Path) -> None:
    """BuildKit's testNamedLocalContext and testNamedImageContext: a folder (with its own .dockerignore) as a
    stage's base and as COPY --from, an image standing in for another image's name, and a stage replaced."""
    context = tmp_path / "main"
    context.mkdir()
    basedir = tmp_path / "basedir"
    basedir.mkdir()
    (basedir / "out").write_text("dummy-result")
    (basedir / "out2").write_text("dummy-result")
    (basedir / ".dockerignore").write_text("out2\n")
    (context / "Dockerfile").write_text(
        "FROM busybox-alias AS tools\n"
        "RUN echo tools > /tools\n"
        "FROM base AS fromdir\n"
        "FROM replaced AS replaced\n"
        "RUN echo never > /never\n"
        "FROM scratch\n"
        "COPY --from=fromdir /o* /fromdir/\n"
        "COPY --from=base /o* /copydir/\n"
        "COPY --from=tools /tools /\n"
        "COPY --from=replaced /bin/busybox /replaced-busybox\n"
    )
    contexts = {
        "base": str(basedir),
        "busybox-alias": f"docker-image://{BASE_IMAGE}",
        "replaced": f"docker-image://{BASE_IMAGE}",
    }
    build(
        context,
        tags=["test/named:1"],
        build_contexts=[f"{name}={value}" for name, value in contexts.items()],
        network="none",
        store=base_store,  # type: ignore[arg-type]
    )
    files = image_files(base_store, "test/named:1")
    assert files.keys() == {"/fromdir/out", "/copydir/out", "/tools", "/replaced-busybox"}
    assert files["/fromdir/out"] == files["/copydir/out"] == b"dummy-result"


def test_cli_build_context_and_platform(base_store: object, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file").write_text("from a named context\n")
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY --from=data file /file\n")
    root = base_store.root  # type: ignore[attr-defined]

    def pybuild(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "build", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path)

    ok = pybuild("--platform=linux/amd64", "--build-context", "data=data", "-t", "test/cli-named:1", "ctx")
    assert ok.returncode == 0, ok.stderr
    assert image_files(base_store, "test/cli-named:1") == {"/file": b"from a named context\n"}
    refused = pybuild("--platform=linux/arm64", "ctx")
    assert refused.returncode == 1
    assert "cannot build for 'linux/arm64'" in refused.stderr and "Traceback" not in refused.stderr
    bad = pybuild("--build-context", "data", "ctx")
    assert bad.returncode == 1 and "invalid --build-context 'data'" in bad.stderr


# --- the syntax directive --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "docker/dockerfile:1",
        "docker/dockerfile:1.4",
        "docker/dockerfile:1.7.1",
        "docker/dockerfile:1.7-labs",
        "docker/dockerfile:1-labs",
        "docker/dockerfile",
        "docker.io/docker/dockerfile:1",
        "docker/dockerfile-upstream:1.9",
        "docker/dockerfile:1@sha256:" + "a" * 64,
        "dockerfile.v0",
    ],
)
def test_own_frontend(reference: str) -> None:
    assert is_own_frontend(reference)
    check_syntax(parse_dockerfile(f"# syntax={reference}\nFROM scratch\n"), {})


@pytest.mark.parametrize(
    "reference",
    [
        "tonistiigi/dockerfile:runmount",
        "docker/dockerfile:0.9",
        "docker/dockerfile:2",
        "example.com/docker/dockerfile:1",
        "docker/dockerfile:master",
    ],
)
def test_other_frontends_are_refused(reference: str) -> None:
    parsed = parse_dockerfile(f"# escape=\\\n# syntax={reference} with args\nFROM scratch\n")
    with pytest.raises(DockerfileSyntaxError) as caught:
        check_syntax(parsed, {})
    assert str(caught.value).startswith(
        f"Dockerfile:2: unsupported frontend image '{reference}' in the syntax directive"
    )


def test_buildkit_syntax_build_arg_wins() -> None:
    parsed = parse_dockerfile("# syntax=other/frontend\nFROM scratch\n")
    check_syntax(parsed, {"BUILDKIT_SYNTAX": "docker/dockerfile:1.5"})
    with pytest.raises(DockerfileSyntaxError, match="'other/x' in the build argument BUILDKIT_SYNTAX"):
        check_syntax(parse_dockerfile("FROM scratch\n"), {"BUILDKIT_SYNTAX": "other/x"})


def test_build_with_syntax_directive_and_refusal(base_store: object, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("# syntax=docker/dockerfile:1.4\nFROM scratch\nCOPY <<EOF /x\nhi\nEOF\n")
    build(tmp_path, tags=["test/syntax:1"], store=base_store)  # type: ignore[arg-type]
    assert image_files(base_store, "test/syntax:1") == {"/x": b"hi\n"}
    (tmp_path / "Dockerfile").write_text("# syntax=my/frontend:2\nFROM scratch\n")
    with pytest.raises(BuildError, match="unsupported frontend image 'my/frontend:2'"):
        build(tmp_path, store=base_store)  # type: ignore[arg-type]
