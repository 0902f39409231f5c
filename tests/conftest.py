from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import BASE_IMAGE, base_context

# Property-based tests (tests/test_fuzz_*.py). The default run is small, the same on every machine (derandomized) and
# writes no example database into the checkout. `scripts/fuzz.sh` passes --hypothesis-profile=fuzz: random examples,
# many more of them (PYBUILD_FUZZ_EXAMPLES), and the failing ones kept in .hypothesis/ to be replayed.
_HEALTH_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, database=None, suppress_health_check=_HEALTH_CHECKS
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("PYBUILD_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=_HEALTH_CHECKS,
)
settings.load_profile("ci")

# Every `docker` the tests run goes through tests/docker_shim, which retries a build only when Docker itself failed to
# start a step (docker_retry.py).
os.environ["PATH"] = f"{Path(__file__).resolve().parent / 'docker_shim'}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ["PYBUILD_TEST_PYTHON"] = sys.executable

# How long `docker info` may take before the daemon counts as unreachable: a loaded shared daemon answers in seconds.
_DOCKER_PROBE_TIMEOUT = 60


@pytest.fixture(scope="session")
def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the whole session, so the busybox base is built once."""
    return tmp_path_factory.mktemp("pybuild-root")


@pytest.fixture(scope="session")
def base_store(session_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from buildkit_py.builder import build
    from buildkit_py.store import Store

    store = Store(session_root)
    build(base_context(tmp_path_factory.mktemp("base")), tags=[BASE_IMAGE], store=store)
    yield store


def _docker_unreachable() -> str | None:
    """Why no Docker daemon can be used, or None when `docker info` answers."""
    if shutil.which("docker") is None:
        return "no Docker daemon: the docker CLI is not on PATH"
    try:
        probe = subprocess.run(
            ["docker", "info"], capture_output=True, text=True, timeout=_DOCKER_PROBE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f"no Docker daemon: `docker info` did not answer within {_DOCKER_PROBE_TIMEOUT}s"
    if probe.returncode != 0:
        return f"no Docker daemon: `docker info` failed: {probe.stderr.strip()[-200:]}"
    return None


@pytest.fixture(scope="session")
def docker_daemon() -> None:
    """A reachable Docker daemon, probed once a session; without one, whatever needs it skips with the reason.

    A test that compares with Docker is marked `docker`, which brings this fixture in. A module- or session-scoped
    fixture that talks to Docker asks for it by name, since it is set up before any of the test's own fixtures."""
    reason = _docker_unreachable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _docker_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker") is not None:
        request.getfixturevalue("docker_daemon")
