"""Build the same Dockerfiles with pybuild and with BuildKit (Docker 20.10's, `DOCKER_BUILDKIT=1`); the images must be
the same.

Every folder under testdata/compare-buildkit/ is a case: a Dockerfile and its files, and optionally
- `build-args`: K=V lines, given to both builders;
- `target`: a stage name;
- `options`: `docker build` flags, one a line, that pybuild also takes: --platform=P, --target=T, --build-arg=K=V,
  --build-context=NAME=VALUE (a folder relative to the case), --network=MODE. Add a flag to `_PYBUILD_FLAGS` to
  support another;
- `secrets`: `id=ID,src=FILE` lines (FILE relative to the case), given to both as --secret;
- `ssh`: agent ids, one a line: each gets a fresh ssh-agent of its own, given to both as --ssh ID=SOCKET;
- `buildkit-stubs`: paths Docker 20.10's BuildKit leaves behind as empty mount points of RUN --mount (BuildKit 0.11
  and later, like pybuild, remove them): each, when BuildKit's image has it, must be an empty folder or file there,
  and is left out of the comparison.
Compared: the flattened filesystem (paths, types, modes, owners, sizes, content, link targets) and the config
fields a Dockerfile sets. Docker 20.10's BuildKit is offline here, so no case may carry a `# syntax=` line (it
would pull the frontend image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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


# Docker 20.10's BuildKit, on this shared daemon, now and then starts a step on a rootfs or mount source that is not
# there yet ("runc run failed: ... no such file or directory"): a fault of the reference, not of the Dockerfile, so
# its build is tried again, a few times at most.
_DAEMON_FAULT = "runc run failed: unable to start container process"
_ATTEMPTS = 5


def buildkit_build(context: Path, tag: str, *flags: str) -> subprocess.CompletedProcess[str]:
    for _ in range(_ATTEMPTS):
        result = subprocess.run(
            [DOCKER, "build", "--network=none", "--no-cache", "--progress=plain", "-t", tag, *flags, str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0 or _DAEMON_FAULT not in result.stderr:
            break
    return result


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _absolute_source(line: str, context: Path) -> str:
    fields = []
    for field in line.split(","):
        key, _, value = field.partition("=")
        fields.append(f"{key}={context / value}" if key in ("src", "source") else field)
    return ",".join(fields)


@contextmanager
def _agent() -> Iterator[str]:
    """A fresh ssh-agent (no keys) for the length of one case; yields its socket."""
    folder = Path(tempfile.mkdtemp(prefix="pybuild-compare-agent-"))
    socket_path = folder / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        while not socket_path.exists():
            assert agent.poll() is None, "ssh-agent exited"
            time.sleep(0.01)
        yield str(socket_path)
    finally:
        agent.terminate()
        agent.wait()
        shutil.rmtree(folder, ignore_errors=True)


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


# The mount points runc makes in a RUN's rootfs, which Docker 20.10's BuildKit leaves in the layer when the image
# lacks them (the files now and then, the folders always); the classic builder and pybuild keep them in an init layer
# (README, "Known differences"). Empty, they are left out of the comparison.
_BUILDKIT_MOUNTPOINTS = ("/dev", "/proc", "/sys", "/etc", "/etc/hosts", "/etc/resolv.conf")


def _normalised_config(config: dict[str, object]) -> dict[str, object]:
    return {field: config.get(field) or None for field in CONFIG_FIELDS}


@pytest.mark.parametrize("case", CASES)
def test_same_image_as_buildkit(case: str, docker_base: str, base_store: object, tmp_path: Path) -> None:
    context = _case_copy(case, docker_base, tmp_path)
    tag = f"pybuild-compare-buildkit/{case}:{uuid.uuid4().hex[:12]}"
    flags, options = case_options(context)
    secrets = [_absolute_source(line, context) for line in _lines(context / "secrets")]
    with ExitStack() as stack:
        ssh = [f"{agent_id}={stack.enter_context(_agent())}" for agent_id in _lines(context / "ssh")]
        flags += [f"--secret={secret}" for secret in secrets] + [f"--ssh={agent}" for agent in ssh]
        result = buildkit_build(context, tag, *flags)
        assert result.returncode == 0, result.stderr
        try:
            _compare(context, tag, base_store, secrets=secrets, ssh=ssh, no_cache=True, **options)
        finally:
            subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True, check=False)


def _compare(context: Path, tag: str, store: object, **options: Any) -> None:
    ours = build(context, tags=[tag], store=store, **options)  # type: ignore[arg-type]
    expected_tree = docker_tree(tag)
    actual_tree = pybuild_tree(store, tag)
    runtime = [path for path in _BUILDKIT_MOUNTPOINTS if path not in actual_tree]
    for stub in sorted([*_lines(context / "buildkit-stubs"), *runtime], key=lambda path: -path.count("/")):
        entry = expected_tree.pop(stub, None)
        assert entry is None or (entry.kind in ("dir", "file") and entry.size == 0), entry
        assert not any(path.startswith(stub + "/") for path in expected_tree), f"{stub} is not empty"
    missing = sorted(set(expected_tree) - set(actual_tree))
    extra = sorted(set(actual_tree) - set(expected_tree))
    different = [
        (expected_tree[path], actual_tree[path])
        for path in sorted(set(expected_tree) & set(actual_tree))
        if expected_tree[path] != actual_tree[path]
    ]
    assert (missing, extra, different) == ([], [], []), (missing, extra, different)
    assert _normalised_config(ours.config.config.to_json()) == _normalised_config(docker_config(tag))


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
