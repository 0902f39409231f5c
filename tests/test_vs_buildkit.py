"""Build the same Dockerfiles with pybuild and with BuildKit (Docker 20.10's, `DOCKER_BUILDKIT=1`); the images must be
the same: the flattened filesystem and the config fields a Dockerfile sets, as tests/test_vs_docker.py compares them.

Every folder under testdata/compare-buildkit/ is a case: a Dockerfile and its context, and optionally beside them
    build-args       K=V lines, for both builders
    target           the stage to build
    secrets          `id=ID,src=FILE` lines (FILE relative to the case), given to both as --secret
    ssh              agent ids, one a line: each gets a fresh ssh-agent of its own, given to both as --ssh ID=SOCKET
    buildkit-stubs   paths Docker 20.10's BuildKit leaves behind as empty mount points of RUN --mount (BuildKit 0.11
                     and later, like pybuild, remove them): each, when BuildKit's image has it, must be an empty
                     folder or file there, and is left out of the comparison
Both builds run without cache and without network: a case must not depend on either."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, TESTDATA, base_context, docker_available, docker_config, docker_tree, pybuild_tree

from buildkit_py.builder import build

DOCKER_20 = Path("/usr/bin/docker")  # the 20.10 client: `docker` on PATH may be a newer one without BuildKit's builder
CASES_DIR = TESTDATA / "compare-buildkit"
CASES = sorted(path.name for path in CASES_DIR.iterdir() if path.is_dir()) if CASES_DIR.is_dir() else []
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

# The mount points runc makes in a RUN's rootfs, which Docker 20.10's BuildKit leaves in the layer when the image
# lacks them (the files now and then, the folders always); Docker's classic builder and pybuild keep them in an init
# layer (README: known differences).
RUNTIME_STUBS = ("/dev", "/proc", "/sys", "/etc", "/etc/hosts", "/etc/resolv.conf")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.geteuid() != 0, reason="builds need root for namespaces and overlayfs"),
    pytest.mark.skipif(not docker_available(), reason="no Docker daemon answers `docker info`"),
    pytest.mark.skipif(not DOCKER_20.exists(), reason="Docker 20.10's client (/usr/bin/docker) is not installed"),
]


# Docker 20.10's BuildKit, on this shared daemon, now and then starts a step on a rootfs or mount source that is not
# there yet ("runc run failed: ... no such file or directory"): a fault of the reference, not of the Dockerfile, so
# its build is tried again, a few times at most.
_DAEMON_FAULT = "runc run failed: unable to start container process"
_ATTEMPTS = 5


def buildkit_build(context: Path, tag: str, *extra: str) -> subprocess.CompletedProcess[str]:
    for _ in range(_ATTEMPTS):
        result = subprocess.run(
            [str(DOCKER_20), "build", "--network=none", "--no-cache", "-q", "-t", tag, *extra, str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0 or _DAEMON_FAULT not in result.stderr:
            break
    return result


@pytest.fixture(scope="module")
def docker_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The busybox base in Docker's store, built the way test_vs_docker.py builds it, under a tag of its own: the
    daemon is shared, and other test runs rebuild and remove BASE_IMAGE at any time. Docker's builds read the case's
    Dockerfile with BASE_IMAGE replaced by this tag."""
    tag = f"pybuild-compare-buildkit/base:{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        ["docker", "build", "--network=none", "-q", "-t", tag, str(base_context(tmp_path_factory.mktemp("b")))],
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


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


@pytest.mark.parametrize("case", CASES)
def test_same_image_as_buildkit(case: str, docker_base: str, base_store: object, tmp_path: Path) -> None:
    context = CASES_DIR / case
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text((context / "Dockerfile").read_text().replace(BASE_IMAGE, docker_base))
    if (context / ".dockerignore").exists():
        shutil.copy(context / ".dockerignore", tmp_path / "Dockerfile.dockerignore")
    tag = f"pybuild-compare-buildkit/{case}:{uuid.uuid4().hex[:12]}"
    build_args = dict(line.split("=", 1) for line in _lines(context / "build-args"))
    target = (_lines(context / "target") or [None])[0]
    secrets = [_absolute_source(line, context) for line in _lines(context / "secrets")]
    with ExitStack() as stack:
        ssh = [f"{agent_id}={stack.enter_context(_agent())}" for agent_id in _lines(context / "ssh")]
        flags = [f"--build-arg={key}={value}" for key, value in build_args.items()]
        flags += [f"--target={target}"] if target else []
        flags += [f"--secret={secret}" for secret in secrets] + [f"--ssh={agent}" for agent in ssh]
        result = buildkit_build(context, tag, "-f", str(dockerfile), *flags)
        assert result.returncode == 0, result.stderr
        try:
            ours = build(
                context,
                tags=[tag],
                build_args=build_args,
                target=target,
                network="none",
                no_cache=True,
                secrets=secrets,
                ssh=ssh,
                store=base_store,  # type: ignore[arg-type]
            )
            expected_tree = docker_tree(tag)
            actual_tree = pybuild_tree(base_store, tag)
            stubs = [*_lines(context / "buildkit-stubs"), *(path for path in RUNTIME_STUBS if path not in actual_tree)]
            for stub in sorted(stubs, key=lambda path: -path.count("/")):
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
            assert (missing, extra, different) == ([], [], [])
            expected_config = {field: docker_config(tag).get(field) or None for field in CONFIG_FIELDS}
            actual_json = ours.config.config.to_json()
            assert {field: actual_json.get(field) or None for field in CONFIG_FIELDS} == expected_config
        finally:
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def _absolute_source(line: str, context: Path) -> str:
    fields = []
    for field in line.split(","):
        key, _, value = field.partition("=")
        fields.append(f"{key}={context / value}" if key in ("src", "source") else field)
    return ",".join(fields)
