"""Build the same Dockerfiles with pybuild and with BuildKit (Docker 20.10's, `DOCKER_BUILDKIT=1`); the images must be
the same.

Every folder under testdata/compare-buildkit/ is a case: a Dockerfile and its files, and optionally
- `build-args`: K=V lines, given to both builders;
- `target`: a stage name;
- `options`: `docker build` flags, one a line, that pybuild also takes: --platform=P, --target=T, --build-arg=K=V,
  --build-context=NAME=VALUE (a folder relative to the case), --network=MODE. Add a flag to `_PYBUILD_FLAGS` to
  support another.
Compared: the flattened filesystem (paths, types, modes, owners, sizes, content, link targets) and the config
fields a Dockerfile sets. Docker 20.10's BuildKit is offline here, so no case may carry a `# syntax=` line (it
would pull the frontend image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BASE_IMAGE, TESTDATA, base_context, docker_config, docker_tree, pybuild_tree

from buildkit_py.builder import build

DOCKER = "/usr/bin/docker"  # the 20.10 client, which has BuildKit built in (a newer `docker` on PATH may lack buildx)

pytestmark = [
    pytest.mark.docker,
]

CASES = sorted(path.name for path in (TESTDATA / "compare-buildkit").iterdir() if path.is_dir())
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


def _list_option(name: str) -> Callable[[dict[str, Any], str, Path], None]:
    def add(options: dict[str, Any], value: str, case: Path) -> None:
        options.setdefault(name, []).append(value)

    return add


def _build_arg(options: dict[str, Any], value: str, case: Path) -> None:
    key, _, arg = value.partition("=")
    options.setdefault("build_args", {})[key] = arg


def _build_context(options: dict[str, Any], value: str, case: Path) -> None:
    name, _, source = value.partition("=")
    if not source.startswith("docker-image://"):
        source = str(case / source)
    options.setdefault("build_contexts", []).append(f"{name}={source}")


# docker build flag -> how it sets pybuild's build options
_PYBUILD_FLAGS: dict[str, Callable[[dict[str, Any], str, Path], None]] = {
    "--platform": lambda options, value, case: options.__setitem__("platform", value),
    "--target": lambda options, value, case: options.__setitem__("target", value),
    "--network": lambda options, value, case: options.__setitem__("network", value),
    "--build-arg": _build_arg,
    "--build-context": _build_context,
}


def case_options(case: Path) -> tuple[list[str], dict[str, Any]]:
    """The case's `docker build` flags and the matching pybuild build options."""
    flags: list[str] = []
    options: dict[str, Any] = {"network": "none"}
    args_file = case / "build-args"
    if args_file.exists():
        for line in args_file.read_text().splitlines():
            if line:
                flags.append(f"--build-arg={line}")
                _build_arg(options, line, case)
    target_file = case / "target"
    if target_file.exists():
        flags.append(f"--target={target_file.read_text().strip()}")
        options["target"] = target_file.read_text().strip()
    options_file = case / "options"
    if options_file.exists():
        for line in options_file.read_text().splitlines():
            if not line.strip():
                continue
            flag, _, value = line.strip().partition("=")
            if flag not in _PYBUILD_FLAGS:
                raise AssertionError(f"{case.name}/options: pybuild has no equivalent of {flag} here")
            _PYBUILD_FLAGS[flag](options, value, case)
            if flag == "--build-context":
                flags.append(f"--build-context={options['build_contexts'][-1]}")
            else:
                flags.append(line.strip())
    return flags, options


def buildkit_build(context: Path, tag: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, "build", "--network=none", "--progress=plain", "-t", tag, *flags, str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def docker_base(tmp_path_factory: pytest.TempPathFactory, base_store: object) -> Iterator[str]:
    """The busybox base (as tests/test_vs_docker.py makes it) under a name of this run's own, in Docker and in
    pybuild's store: other test runs on the shared daemon rebuild and remove `pybuild-test/busybox:latest`."""
    name = f"pybuild-compare-buildkit/base:{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        [DOCKER, "build", "-q", "-t", name, str(base_context(tmp_path_factory.mktemp("docker-base")))],
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    base_store.tags.set(name, base_store.resolve(BASE_IMAGE))  # type: ignore[attr-defined]
    try:
        yield name
    finally:
        subprocess.run([DOCKER, "rmi", "-f", name], capture_output=True, check=False)


def _case_copy(case: str, base: str, tmp_path: Path) -> Path:
    """The case with its base image name replaced by this run's."""
    context = tmp_path / case
    shutil.copytree(TESTDATA / "compare-buildkit" / case, context, symlinks=True)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(BASE_IMAGE, base))
    return context


# BuildKit leaves the mountpoints of a RUN (/dev, /etc for hosts and resolv.conf, /proc, /sys) in its layer as
# empty folders when the base lacks them; the classic builder keeps them in its init layer, and pybuild follows it
# (README, "Known differences").
_BUILDKIT_MOUNTPOINTS = ("/dev", "/etc", "/proc", "/sys")


def _mount_stubs(tree: dict[str, Any]) -> set[str]:
    return {
        path
        for path in _BUILDKIT_MOUNTPOINTS
        if path in tree and tree[path].kind == "dir" and not any(other.startswith(path + "/") for other in tree)
    }


def _normalised_config(config: dict[str, object]) -> dict[str, object]:
    return {field: config.get(field) or None for field in CONFIG_FIELDS}


@pytest.mark.parametrize("case", CASES)
def test_same_image_as_buildkit(case: str, docker_base: str, base_store: object, tmp_path: Path) -> None:
    context = _case_copy(case, docker_base, tmp_path)
    tag = f"pybuild-compare-buildkit/{case}:{uuid.uuid4().hex[:12]}"
    flags, options = case_options(context)
    result = buildkit_build(context, tag, *flags)
    assert result.returncode == 0, result.stderr
    try:
        ours = build(context, tags=[tag], store=base_store, **options)  # type: ignore[arg-type]
        expected_tree = docker_tree(tag)
        actual_tree = pybuild_tree(base_store, tag)
        missing = sorted(set(expected_tree) - set(actual_tree) - _mount_stubs(expected_tree))
        extra = sorted(set(actual_tree) - set(expected_tree))
        different = [
            (expected_tree[path], actual_tree[path])
            for path in sorted(set(expected_tree) & set(actual_tree))
            if expected_tree[path] != actual_tree[path]
        ]
        assert (missing, extra, different) == ([], [], []), (missing, extra, different)
        assert _normalised_config(ours.config.config.to_json()) == _normalised_config(docker_config(tag))
    finally:
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True, check=False)


def test_case_options_translate_flags(tmp_path: Path) -> None:
    (tmp_path / "build-args").write_text("A=1\n")
    (tmp_path / "options").write_text("--platform=linux/amd64\n--build-context=data=dir\n--build-arg=B=2\n")
    flags, options = case_options(tmp_path)
    assert flags == [
        "--build-arg=A=1",
        "--platform=linux/amd64",
        f"--build-context=data={tmp_path / 'dir'}",
        "--build-arg=B=2",
    ]
    assert options == {
        "network": "none",
        "build_args": {"A": "1", "B": "2"},
        "platform": "linux/amd64",
        "build_contexts": [f"data={tmp_path / 'dir'}"],
    }
