"""Our image config against Docker 20.10's classic builder (`DOCKER_BUILDKIT=0 docker build`), field by field.

Metadata-only Dockerfiles on `FROM scratch` build without any base image or network. Each one is built by Docker
and planned by us; the `config` objects must agree. Dockerfiles Docker refuses must be refused by us too, with
Docker's message. Skipped when no Docker daemon answers.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from buildkit_py.digest import Digest
from buildkit_py.errors import DockerfileError, ImageNotFound
from buildkit_py.frontend.dockerfile2ops import dockerfile_to_plan
from buildkit_py.frontend.parser import parse_dockerfile
from buildkit_py.frontend.plan import BuildPlan, ResolvedImage
from buildkit_py.image.config import ContainerConfig, ImageConfig
from buildkit_py.solver.ops import ContextSource

pytestmark = pytest.mark.docker


class DockerBuild:
    def __init__(self, returncode: int, output: str, tag: str) -> None:
        self.returncode = returncode
        self.output = output
        self.tag = tag

    def inspect(self) -> dict[str, Any]:
        result = subprocess.run(
            ["docker", "image", "inspect", self.tag], capture_output=True, text=True, check=True, timeout=60
        )
        inspected: dict[str, Any] = json.loads(result.stdout)[0]
        return inspected


@pytest.fixture
def docker_build(tmp_path: Path) -> Iterator[Any]:
    tags: list[str] = []

    def build(dockerfile: str, build_args: Mapping[str, str] | None = None) -> DockerBuild:
        context = tmp_path / uuid.uuid4().hex
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile)
        tag = f"buildkit-py-cfgtest-{uuid.uuid4().hex[:12]}"
        command = ["docker", "build", "--network=none", "-t", tag]
        for key, value in (build_args or {}).items():
            command += ["--build-arg", f"{key}={value}"]
        result = subprocess.run(
            [*command, str(context)],
            capture_output=True,
            text=True,
            env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
            timeout=300,
            check=False,
        )
        if result.returncode == 0:
            tags.append(tag)
        return DockerBuild(result.returncode, result.stdout + result.stderr, tag)

    yield build
    if tags:
        subprocess.run(["docker", "image", "rm", "-f", *tags], capture_output=True, check=False, timeout=120)


def docker_resolver(images: Mapping[str, dict[str, Any]]) -> Any:
    """Resolve names to the configs Docker built: test data read back from `docker image inspect`."""

    def resolve(ref: str) -> ResolvedImage:
        if ref not in images:
            raise ImageNotFound(f"no such image: {ref}")
        inspected = images[ref]
        config = ImageConfig(config=ContainerConfig.from_json(inspected["Config"]))
        return ResolvedImage(ref=ref, image_id=Digest.parse(inspected["Id"]), config=config)

    return resolve


def our_plan(
    dockerfile: str, build_args: Mapping[str, str] | None = None, images: Mapping[str, dict[str, Any]] | None = None
) -> BuildPlan:
    return dockerfile_to_plan(
        parse_dockerfile(dockerfile),
        context=ContextSource(name="context", path="."),
        build_args=build_args or {},
        target=None,
        resolve_image=docker_resolver(images or {}),
        network="none",
    )


FIELDS = (
    "env",
    "cmd",
    "entrypoint",
    "working_dir",
    "user",
    "exposed_ports",
    "volumes",
    "labels",
    "stop_signal",
    "healthcheck",
    "shell",
    "on_build",
)


def assert_same_config(ours: ContainerConfig, docker: ContainerConfig) -> None:
    differences = {
        name: (getattr(ours, name), getattr(docker, name))
        for name in FIELDS
        if getattr(ours, name) != getattr(docker, name)
    }
    assert differences == {}, f"ours vs docker: {differences}"


SAME_CONFIG: dict[str, str] = {
    "env-forms": "FROM scratch\nENV a=1\nENV a=2 b=$a\nENV c $a d\nENV q=\"x y\" r='$a' s=\\$a\n",
    "env-expansion": "FROM scratch\nENV A=1\nENV B=${A:-x}${NOPE:-dflt} C=${A:+set} D=${NOPE:+set}\n",
    "arg-scoping": (
        "ARG G=global\nARG H\nFROM scratch\nENV BEFORE=[$G]\nARG G\nENV AFTER=[$G]\nARG L=local\n"
        "ENV L=[$L]\nENV L2=$L\nARG a=1 b=2\nENV ab=$a$b\n"
    ),
    "labels": 'FROM scratch\nARG V=1.0\nLABEL "a b"="c d" e=f\nLABEL version=$V e=g\nLABEL multi="one \\\n two"\n',
    "expose-volume": 'FROM scratch\nARG P=9000\nEXPOSE 80 8000-8002/udp 443/tcp $P/TCP\nVOLUME /data $P\nVOLUME ["/y", "/z"]\n',
    "user-workdir": "FROM scratch\nUSER 1000:1000\nWORKDIR /a/b\nWORKDIR c/../d\nENV W=/w\nWORKDIR $W/x\n",
    "cmd-entrypoint": 'FROM scratch\nCMD ["x"]\nENTRYPOINT ["y", "z"]\n',
    "shell-forms": 'FROM scratch\nSHELL ["/bin/bash", "-c"]\nCMD echo hi\nENTRYPOINT echo ep\n',
    "empty-cmd": "FROM scratch\nCMD\n",
    "healthcheck": (
        "FROM scratch\nHEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=3 CMD curl x\n"
    ),
    "healthcheck-exec-then-none": 'FROM scratch\nHEALTHCHECK CMD ["a", "b"]\nHEALTHCHECK --interval=5s NONE\n',
    "stopsignal-onbuild": "FROM scratch\nSTOPSIGNAL SIGKILL\nONBUILD ENV X=1\nONBUILD   RUN   echo  hi\n",
    "stopsignal-number": "FROM scratch\nARG S=9\nSTOPSIGNAL $S\n",
    "multi-stage": "FROM scratch AS base\nENV A=1\nLABEL l=1\nFROM base AS mid\nENV B=$A\nFROM mid\nUSER x\n",
    "escape-directive": '# escape=`\nFROM scratch\nENV A=`$notvar B=c`\nd\nLABEL x=`"q`"\n',
}


@pytest.mark.parametrize("name", sorted(SAME_CONFIG))
def test_config_matches_docker(name: str, docker_build: Any) -> None:
    dockerfile = SAME_CONFIG[name]
    built = docker_build(dockerfile)
    assert built.returncode == 0, built.output
    docker_config = ContainerConfig.from_json(built.inspect()["Config"])
    assert_same_config(our_plan(dockerfile).config, docker_config)


def test_build_args_match_docker(docker_build: Any) -> None:
    dockerfile = "ARG TAG=scratch\nFROM $TAG\nARG V=default\nARG W\nENV V=$V W=$W\n"
    build_args = {"V": "cli", "W": "w", "UNUSED": "u"}
    built = docker_build(dockerfile, build_args)
    assert built.returncode == 0, built.output
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in built.output
    ours = our_plan(dockerfile, build_args)
    assert ours.unused_build_args == {"UNUSED"}
    assert_same_config(ours.config, ContainerConfig.from_json(built.inspect()["Config"]))


def test_maintainer_is_the_author(docker_build: Any) -> None:
    dockerfile = "FROM scratch\nMAINTAINER me <me@example.com>\n"
    built = docker_build(dockerfile)
    assert built.returncode == 0, built.output
    assert our_plan(dockerfile).author == built.inspect()["Author"] == "me <me@example.com>"


def test_child_of_a_docker_built_parent(docker_build: Any) -> None:
    """ONBUILD triggers run and are cleared; ENTRYPOINT clears the inherited CMD."""
    parent = docker_build('FROM scratch\nENV P=1\nCMD ["base"]\nONBUILD ENV FROMBASE=$P\nONBUILD LABEL t=1\n')
    assert parent.returncode == 0, parent.output
    child_file = f'FROM {parent.tag}\nENTRYPOINT ["z"]\nENV MINE=$FROMBASE\n'
    child = docker_build(child_file)
    assert child.returncode == 0, child.output
    ours = our_plan(child_file, images={parent.tag: parent.inspect()})
    assert_same_config(ours.config, ContainerConfig.from_json(child.inspect()["Config"]))


REFUSED: dict[str, str] = {
    "unknown-instruction": "FROM scratch\nFOO bar\n",
    "unknown-flag": "FROM scratch\nENV --foo A=1\n",
    "duplicate-flag": "FROM scratch\nCOPY --from=a --from=b x y\n",
    "before-from": "ENV A=1\nFROM scratch\n",
    "blank-env": "FROM scratch\nENV =x\n",
    "shell-not-json": "FROM scratch\nSHELL /bin/sh -c\n",
    "duration-unit": "FROM scratch\nHEALTHCHECK --interval=10 CMD a\n",
    "duration-small": "FROM scratch\nHEALTHCHECK --timeout=100us CMD a\n",
    "retries": "FROM scratch\nHEALTHCHECK --retries=0 CMD a\n",
    "start-interval": "FROM scratch\nHEALTHCHECK --start-interval=1s CMD a\n",
    "healthcheck-type": "FROM scratch\nHEALTHCHECK FOO a\n",
    "required-var": "FROM scratch\nENV A=${NOPE:?required}\n",
    "bad-signal": "FROM scratch\nSTOPSIGNAL FOO\n",
    "bad-port": "FROM scratch\nEXPOSE abc\n",
    "onbuild-onbuild": "FROM scratch\nONBUILD ONBUILD ENV X=1\n",
    "onbuild-from": "FROM scratch\nONBUILD FROM x\n",
    "copy-many-to-file": "FROM scratch\nWORKDIR /app\nCOPY Dockerfile Dockerfile .\n",
    "from-index-out-of-bounds": "FROM scratch\nCOPY --from=1 Dockerfile /x\n",
    "stage-name": "FROM scratch AS 1bad\n",
    "workdir-no-arg": "FROM scratch\nWORKDIR\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_docker_refuses_so_do_we(name: str, docker_build: Any) -> None:
    dockerfile = REFUSED[name]
    built = docker_build(dockerfile)
    assert built.returncode != 0, f"Docker accepted {name}"
    with pytest.raises(DockerfileError) as caught:
        our_plan(dockerfile)
    assert caught.value.message in built.output, f"ours: {caught.value.message!r}\ndocker: {built.output}"


@pytest.fixture
def docker_import(tmp_path: Path) -> Iterator[Any]:
    """`docker import --change ...` of an empty tar: (exit status, output, the image's config when it worked)."""
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    images: list[str] = []

    def run(changes: list[str]) -> tuple[int, str, ContainerConfig | None]:
        command = ["docker", "import"]
        for change in changes:
            command += ["--change", change]
        result = subprocess.run([*command, str(empty)], capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            return result.returncode, result.stdout + result.stderr, None
        image_id = result.stdout.strip()
        images.append(image_id)
        inspected = subprocess.run(
            ["docker", "image", "inspect", image_id], capture_output=True, text=True, check=True, timeout=60
        )
        return 0, result.stdout, ContainerConfig.from_json(json.loads(inspected.stdout)[0]["Config"])

    yield run
    if images:
        subprocess.run(["docker", "image", "rm", "-f", *images], capture_output=True, check=False, timeout=120)


IMPORT_CHANGES: dict[str, list[str]] = {
    "env-label-user": ["ENV A=1 B=$A", "ENV C=$A", 'LABEL "a b"="c d" e=$C', "USER daemon:daemon"],
    "expose-volume": ["EXPOSE 80 53/udp 8000-8002/TCP", 'VOLUME ["/data"]', "VOLUME /logs"],
    "workdir-relative": ["WORKDIR a/./b/..", "WORKDIR c"],
    "workdir-absolute-kept": ["WORKDIR /a/../b"],
    "cmd-then-entrypoint": ['CMD ["x"]', "ENTRYPOINT run me"],
    "entrypoint-then-cmd": ['ENTRYPOINT ["y"]', "CMD z"],
    "healthcheck-onbuild": ["HEALTHCHECK --interval=5s --retries=2 CMD true", "ONBUILD RUN echo hi"],
}


@pytest.mark.parametrize("name", sorted(IMPORT_CHANGES))
def test_import_changes_match_docker(name: str, docker_import: Any) -> None:
    from buildkit_py.frontend.changes import apply_changes

    status, output, docker_config = docker_import(IMPORT_CHANGES[name])
    assert status == 0 and docker_config is not None, output
    assert_same_config(apply_changes(ContainerConfig(), IMPORT_CHANGES[name]), docker_config)


IMPORT_REFUSED: dict[str, str] = {
    "run": "RUN true",
    "stopsignal": "STOPSIGNAL SIGINT",
    "shell": 'SHELL ["/bin/bash", "-c"]',
    "maintainer": "MAINTAINER me",
    "arg": "ARG A=1",
    "blank-env": "ENV =x",
    "bad-port": "EXPOSE 99999",
    "bad-protocol": "EXPOSE 80/foo",
    "empty-volume": 'VOLUME [""]',
    "retries": "HEALTHCHECK --retries=0 CMD a",
}


@pytest.mark.parametrize("name", sorted(IMPORT_REFUSED))
def test_import_refuses_changes_as_docker_does(name: str, docker_import: Any) -> None:
    from buildkit_py.frontend.changes import apply_changes

    status, output, _ = docker_import(["ENV A=1", IMPORT_REFUSED[name]])
    assert status != 0, f"Docker accepted {name}"
    with pytest.raises(DockerfileError) as caught:
        apply_changes(ContainerConfig(), ["ENV A=1", IMPORT_REFUSED[name]])
    assert caught.value.message in output, f"ours: {caught.value.message!r}\ndocker: {output}"
