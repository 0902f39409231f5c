"""Build the same Dockerfiles with pybuild and with Docker's classic builder; the images must be the same.

Compared: the flattened filesystem (paths, types, modes, owners, sizes, content, link targets) and the config fields
a Dockerfile sets. Dockerfiles that Docker refuses must be refused too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BASE_IMAGE, TESTDATA, base_context, docker_config, docker_tree, pybuild_tree

from buildkit_py.builder import build
from buildkit_py.errors import BuildError
from buildkit_py.image.stored import image_config

pytestmark = pytest.mark.docker

CASES = sorted(path.name for path in (TESTDATA / "compare").iterdir() if path.is_dir())
REFUSED = sorted(path.name for path in (TESTDATA / "compare-refused").iterdir() if path.is_dir())
CONFIG_FIELDS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
)


def docker_build(context: Path, tag: str, *extra: str) -> subprocess.CompletedProcess[str]:
    # --no-cache: on this kernel Docker 20.10 now and then commits a layer that lacks a file it copied, and its cache
    # would serve that layer to every later build
    return subprocess.run(
        ["docker", "build", "--no-cache", "--network=none", "-q", "-t", tag, *extra, str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def docker_base(docker_daemon: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The busybox base in Docker under a tag of this run's own: the daemon may be shared with other runs, which
    build and remove their own bases meanwhile. The cases' Dockerfiles name BASE_IMAGE; case_context maps it."""
    tag = f"pybuild-test/busybox:{uuid.uuid4().hex[:12]}"
    result = docker_build(base_context(tmp_path_factory.mktemp("docker-base")), tag)
    assert result.returncode == 0, result.stderr
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def base_for_both(docker_base: str, base_store: object) -> str:
    """This run's base under the name Docker knows it by; pybuild's store gets that name too."""
    store: Any = base_store
    store.tags.set(docker_base, store.resolve(BASE_IMAGE))
    return docker_base


def case_context(case: Path, docker_base: str, base_store: object, folder: Path) -> Path:
    """A copy of the case's context whose Dockerfile names this run's base (also through `ARG TAG`, as
    env-arg-forms spells it), so both builders read the same context."""
    base_for_both(docker_base, base_store)
    context = folder / case.name
    shutil.copytree(case, context, symlinks=True)
    own_tag = docker_base.rpartition(":")[2]
    for dockerfile in (context / "Dockerfile", context / "dockerfile"):  # bytes: a case may hold Latin-1
        if dockerfile.exists():
            text = dockerfile.read_bytes().replace(BASE_IMAGE.encode(), docker_base.encode())
            dockerfile.write_bytes(text.replace(b"ARG TAG=latest", b"ARG TAG=" + own_tag.encode()))
    return context


def _options(context: Path) -> tuple[list[str], dict[str, str], str | None]:
    """A case may carry `build-args` (K=V lines) and `target` (a stage name) beside its Dockerfile."""
    build_args: dict[str, str] = {}
    args_file = context / "build-args"
    if args_file.exists():
        build_args = dict(line.split("=", 1) for line in args_file.read_text().splitlines() if line)
    target_file = context / "target"
    target = target_file.read_text().strip() if target_file.exists() else None
    docker_flags = [f"--build-arg={key}={value}" for key, value in build_args.items()]
    if target:
        docker_flags.append(f"--target={target}")
    return docker_flags, build_args, target


# Docker 20.10 tells `"Cmd": []` from `"Cmd": null` (`CMD []` keeps the first; `CMD []` then ENTRYPOINT the second).
STRICT_FIELDS = ("Cmd", "Entrypoint")


def _normalised_config(config: dict[str, object]) -> dict[str, object]:
    return {
        field: config.get(field) if field in STRICT_FIELDS else config.get(field) or None for field in CONFIG_FIELDS
    }


def _tree_differences(expected: dict[str, Any], actual: dict[str, Any]) -> tuple[list[str], list[str], list[Any]]:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    different = [
        (expected[path], actual[path]) for path in sorted(set(expected) & set(actual)) if expected[path] != actual[path]
    ]
    return missing, extra, different


@pytest.mark.parametrize("case", CASES)
def test_same_image_as_docker(case: str, docker_base: str, base_store: object, tmp_path: Path) -> None:
    context = case_context(TESTDATA / "compare" / case, docker_base, base_store, tmp_path)
    tag = f"pybuild-compare/{case}:{uuid.uuid4().hex[:12]}"  # its own: the daemon may be shared with other runs
    docker_flags, build_args, target = _options(context)
    result = docker_build(context, tag, *docker_flags)
    assert result.returncode == 0, result.stderr
    try:
        ours = build(context, tags=[tag], build_args=build_args, target=target, network="none", store=base_store)  # type: ignore[arg-type]
        actual_tree = pybuild_tree(base_store, tag)
        differences = _tree_differences(docker_tree(tag), actual_tree)
        if differences != ([], [], []):
            # Docker's own build is not always whole on this kernel (a copied file missing from its layer): a second
            # build by Docker decides; pybuild's image is the same either way.
            result = docker_build(context, tag, *docker_flags)
            assert result.returncode == 0, result.stderr
            differences = _tree_differences(docker_tree(tag), actual_tree)
        assert differences == ([], [], [])
        expected_config = _normalised_config(docker_config(tag))
        actual_config = _normalised_config(ours.config.config.to_json())
        assert actual_config == expected_config
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


@pytest.mark.parametrize("case", REFUSED)
def test_refused_like_docker(case: str, docker_base: str, base_store: object, tmp_path: Path) -> None:
    context = case_context(TESTDATA / "compare-refused" / case, docker_base, base_store, tmp_path)
    result = docker_build(context, f"pybuild-refused/{case}:{uuid.uuid4().hex[:12]}")
    assert result.returncode != 0, f"Docker accepted {case}"
    with pytest.raises(BuildError):
        build(context, store=base_store)  # type: ignore[arg-type]


# -- the command line against Docker's -------------------------------------------------------------------------------


def _pybuild(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        check=False,
    )


def _docker_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["docker", *args], env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, check=False
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("only-scratch", "No image was generated. Is your Dockerfile empty?"),
        ("volume-over-file", "cannot mount volume over existing file, file exists"),
    ],
)
def test_refusal_says_what_docker_says(
    case: str, message: str, docker_base: str, base_store: object, tmp_path: Path
) -> None:
    context = case_context(TESTDATA / "compare-refused" / case, docker_base, base_store, tmp_path)
    docker = _docker_cli("build", "--network=none", "-q", str(context))
    assert docker.returncode == 1 and message in docker.stderr.decode()
    ours = _pybuild(base_store.root, "build", "-q", str(context))  # type: ignore[attr-defined]
    assert ours.returncode == 1 and message in ours.stderr.decode()
    assert b"Traceback" not in ours.stderr


def test_failing_run_exits_with_its_status_as_docker_does(docker_base: str, base_store: object, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {base_for_both(docker_base, base_store)}\nRUN exit 3\n")
    docker = _docker_cli("build", "--network=none", "-q", str(tmp_path))
    ours = _pybuild(base_store.root, "build", "-q", "--network=none", str(tmp_path))  # type: ignore[attr-defined]
    assert (ours.returncode, docker.returncode) == (3, 3), (ours.stderr, docker.stderr)


def test_label_flags_are_labels_and_history_as_docker_adds_them(
    docker_base: str, base_store: object, tmp_path: Path
) -> None:
    base = base_for_both(docker_base, base_store)
    (tmp_path / "Dockerfile").write_text(f"FROM {base} AS first\nLABEL x=1\nFROM {base}\nLABEL y=2\n")
    flags = ["--label", "k=v 1", "--label", "b=2", "--label", "novalue", "--label", "x=$HOME"]
    for target in ([], ["--target", "first"]):
        tag = f"pybuild-compare/labels-{uuid.uuid4().hex[:12]}"
        docker = _docker_cli("build", "--network=none", "-q", "-t", tag, *flags, *target, str(tmp_path))
        assert docker.returncode == 0, docker.stderr
        try:
            ours = _pybuild(base_store.root, "build", "-q", "-t", tag, *flags, *target, str(tmp_path))  # type: ignore[attr-defined]
            assert ours.returncode == 0, ours.stderr
            our_config = image_config(base_store, base_store.resolve(tag))  # type: ignore[attr-defined]
            assert our_config.config.to_json()["Labels"] == docker_config(tag)["Labels"]
            docker_history = _docker_cli("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout.decode()
            docker_steps = [line.split("#(nop)")[-1].strip() for line in docker_history.splitlines()[:4]]
            assert [entry.created_by for entry in reversed(our_config.history)][:4] == docker_steps
        finally:
            _docker_cli("rmi", "-f", tag)


def test_names_that_are_not_utf8_are_copied_as_docker_copies_them(
    docker_base: str, base_store: object, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    (context / os.fsdecode(b"d\xe9r")).mkdir(parents=True)
    (context / os.fsdecode(b"d\xe9r") / os.fsdecode(b"f\xff")).write_text("latin-1 name\n")
    os.symlink(os.fsdecode(b"t\xfe"), context / os.fsdecode(b"l\xfd"))
    (context / "Dockerfile").write_text(f"FROM {base_for_both(docker_base, base_store)}\nCOPY . /x/\n")
    tag = f"pybuild-compare/non-utf8-{uuid.uuid4().hex[:12]}"
    docker = _docker_cli("build", "--network=none", "-q", "-t", tag, str(context))
    assert docker.returncode == 0, docker.stderr
    try:
        ours = _pybuild(base_store.root, "build", "-q", "-t", tag, str(context))  # type: ignore[attr-defined]
        assert ours.returncode == 0, ours.stderr
        expected, actual = docker_tree(tag), pybuild_tree(base_store, tag)
        assert {path for path in expected if path.startswith("/x/")} == {p for p in actual if p.startswith("/x/")}
        assert all(expected[path] == actual[path] for path in expected if path.startswith("/x/"))
    finally:
        _docker_cli("rmi", "-f", tag)


def test_image_size_is_dockers(docker_base: str, base_store: object, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_for_both(docker_base, base_store)}\n"
        "RUN head -c 123457 /dev/zero > /data && ln /data /hard && ln -s /data /soft && mkdir -p /d/e\n"
        "COPY Dockerfile /d/e/\n"
        "RUN rm /hard /bin/ls && echo changed > /data\n"
    )
    tag = f"pybuild-compare/size-{uuid.uuid4().hex[:12]}"
    docker = _docker_cli("build", "--network=none", "-q", "-t", tag, str(tmp_path))
    assert docker.returncode == 0, docker.stderr
    try:
        docker_size = int(_docker_cli("inspect", "-f", "{{.Size}}", tag).stdout)
        ours = _pybuild(base_store.root, "build", "-q", "-t", tag, str(tmp_path))  # type: ignore[attr-defined]
        assert ours.returncode == 0, ours.stderr
        listed = _pybuild(base_store.root, "images", "--format", "json", tag)  # type: ignore[attr-defined]
        assert json.loads(listed.stdout)[0]["Size"] == docker_size
    finally:
        _docker_cli("rmi", "-f", tag)
