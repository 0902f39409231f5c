"""Build testdata/compare-buildkit/ with pybuild and with Docker 20.10's BuildKit (`DOCKER_BUILDKIT=1`); the images
must be the same: the flattened filesystem (paths, types, modes, owners, sizes, content, link targets) and the
config fields a Dockerfile sets.

A minimal runner for the COPY/ADD cases of this branch, on the conventions of tests/test_vs_buildkit.py (a case is a
folder with a Dockerfile; `pybuild-test/busybox:latest` in it is replaced by a base of this run's own, since other
runs on the shared daemon rebuild and remove that name). That file runs every case once merged; this one can go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, TESTDATA, base_context, docker_available, docker_config, docker_tree, pybuild_tree

from buildkit_py.builder import build

DOCKER = "/usr/bin/docker"  # the 20.10 client, with BuildKit built in
CASES = sorted(path.name for path in (TESTDATA / "compare-buildkit").iterdir() if path.is_dir())
CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.geteuid() != 0, reason="builds need root for namespaces and overlayfs"),
    pytest.mark.skipif(not os.path.exists(DOCKER) or not docker_available(), reason="no Docker daemon answers"),
]


@pytest.fixture(scope="module")
def docker_base(tmp_path_factory: pytest.TempPathFactory, base_store: object) -> Iterator[str]:
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


@pytest.mark.parametrize("case", CASES)
def test_same_image_as_buildkit(case: str, docker_base: str, base_store: object, tmp_path: Path) -> None:
    context = tmp_path / case
    shutil.copytree(TESTDATA / "compare-buildkit" / case, context, symlinks=True)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(BASE_IMAGE, docker_base))
    tag = f"pybuild-compare-buildkit/{case}:{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        [DOCKER, "build", "--network=none", "--progress=plain", "-t", tag, str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    try:
        ours = build(context, tags=[tag], network="none", store=base_store)  # type: ignore[arg-type]
        expected, actual = docker_tree(tag), pybuild_tree(base_store, tag)
        different = [(expected[path], actual[path]) for path in sorted(expected) if actual.get(path) != expected[path]]
        assert (different, sorted(set(actual) - set(expected))) == ([], [])
        ours_config = ours.config.config.to_json()
        theirs = docker_config(tag)
        assert {name: ours_config.get(name) or None for name in CONFIG_FIELDS} == {
            name: theirs.get(name) or None for name in CONFIG_FIELDS
        }
    finally:
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True, check=False)
