"""A no-op rebuild is answered from the last build's fingerprint without loading the build machinery, and any change
to what a build reads sends it the whole way: a byte of a file, a file's mode, the Dockerfile, a build arg, the base
image's tag moved to another image. A stale image is a defect; a needless full build is only slower."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, loaded_by_a_build

from buildkit_py.builder import build
from buildkit_py.fastpath import fingerprint
from buildkit_py.options import BuildOptions
from buildkit_py.store import Store

DOCKERFILE = f"""FROM {BASE_IMAGE}
ARG FLAVOUR=plain
COPY app/ /app/
RUN echo "$FLAVOUR" > /flavour && cat /app/data.txt > /copy
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    context = tmp_path / "project"
    (context / "app").mkdir(parents=True)
    (context / "app" / "data.txt").write_text("version 1\n")
    (context / "app" / "run.sh").write_text("#!/bin/sh\n")
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / ".dockerignore").write_text("ignored/\n")
    return context


def _pybuild(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, with the modules it imported listed on stderr (-X importtime)."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "buildkit_py.cli.main", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _took_fast_path(result: subprocess.CompletedProcess[str]) -> bool:
    assert result.returncode == 0, result.stderr[-3000:]
    return "buildkit_py.frontend" not in result.stderr and "buildkit_py.builder" not in result.stderr


def _file(root: Path, image: str, path: str) -> bytes:
    from helpers import pybuild_tree

    tree = pybuild_tree(Store(root), image)
    return tree[path].content.encode()


def test_a_noop_rebuild_loads_no_build_machinery_and_gives_the_same_image(base_store: Store, project: Path) -> None:
    root = base_store.root
    first = _pybuild(root, "build", "-q", "-t", "fast/app:1", str(project))
    assert not _took_fast_path(first)
    again = _pybuild(root, "build", "-q", "-t", "fast/app:2", str(project))
    assert _took_fast_path(again)
    assert again.stdout == first.stdout  # the image id
    assert base_store.resolve("fast/app:2") == base_store.resolve("fast/app:1")
    plain = _pybuild(root, "build", "--progress=plain", str(project))
    assert _took_fast_path(plain) and "#2 CACHED" in plain.stderr and "RUN echo" in plain.stderr


@pytest.mark.parametrize(
    "change",
    ["a byte of a file", "a file's mode", "a new file", "the Dockerfile", "a build arg", "the .dockerignore"],
)
def test_every_input_of_the_fast_path_sends_a_build_the_whole_way(
    base_store: Store, project: Path, change: str
) -> None:
    root = base_store.root
    args = ["build", "-q", str(project)]
    first = _pybuild(root, *args)
    assert _took_fast_path(_pybuild(root, *args))
    if change == "a byte of a file":
        stat = (project / "app" / "data.txt").stat()
        (project / "app" / "data.txt").write_text("version 2\n")  # same size, same mtime: only ctime tells
        os.utime(project / "app" / "data.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif change == "a file's mode":
        (project / "app" / "run.sh").chmod(0o755)
    elif change == "a new file":
        (project / "app" / "new.txt").write_text("new\n")
    elif change == "the Dockerfile":
        (project / "Dockerfile").write_text(DOCKERFILE + "LABEL more=1\n")
    elif change == "a build arg":
        args = ["build", "-q", "--build-arg", "FLAVOUR=sweet", str(project)]
    elif change == "the .dockerignore":
        (project / ".dockerignore").write_text("ignored/\napp/run.sh\n")
    second = _pybuild(root, *args)
    assert not _took_fast_path(second)
    assert second.stdout != first.stdout
    if change == "a byte of a file":
        assert _file(root, second.stdout.strip(), "/copy") == _file(root, second.stdout.strip(), "/app/data.txt")


def test_an_ignored_file_changes_nothing(base_store: Store, project: Path) -> None:
    root = base_store.root
    first = _pybuild(root, "build", "-q", str(project))
    (project / "ignored").mkdir()
    (project / "ignored" / "scratch.log").write_text("noise\n")
    again = _pybuild(root, "build", "-q", str(project))
    assert _took_fast_path(again) and again.stdout == first.stdout


def test_a_moved_base_tag_sends_the_build_the_whole_way(base_store: Store, project: Path, tmp_path: Path) -> None:
    root = base_store.root
    base = "fast/base:1"
    base_store.tags.set(base, base_store.resolve(BASE_IMAGE))
    (project / "Dockerfile").write_text(DOCKERFILE.replace(BASE_IMAGE, base))
    first = _pybuild(root, "build", "-q", str(project))
    assert _took_fast_path(_pybuild(root, "build", "-q", str(project)))
    other = tmp_path / "other-base"
    other.mkdir()
    (other / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo other > /other\n")
    build(other, tags=[base], store=base_store)
    moved = _pybuild(root, "build", "-q", str(project))
    assert not _took_fast_path(moved) and moved.stdout != first.stdout


def test_a_removed_image_or_flags_that_need_the_build_are_never_answered_from_the_fingerprint(
    base_store: Store, project: Path
) -> None:
    root = base_store.root
    (project / "app" / "data.txt").write_text("only this test builds this\n")  # an image no other tag names
    first = _pybuild(root, "build", "-q", "-t", "fast/gone:1", str(project))
    for flags in (["--no-cache"], ["--explain"]):
        assert not _took_fast_path(_pybuild(root, "build", "-q", *flags, str(project)))
    assert (
        subprocess.run(
            [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "rmi", "fast/gone:1"],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    rebuilt = _pybuild(root, "build", "-q", "-t", "fast/gone:1", str(project))
    assert not _took_fast_path(rebuilt) and rebuilt.stdout.startswith("sha256:")
    assert first.stdout


def test_options_that_depend_on_more_than_the_context_have_no_fingerprint(project: Path) -> None:
    assert fingerprint(BuildOptions(context=project)) is not None
    for changed in ({"no_cache": True}, {"pull": True}, {"no_cache_stages": ("x",)}):
        assert fingerprint(BuildOptions(context=project, **changed)) is None  # type: ignore[arg-type]


def test_the_fingerprint_kept_for_the_build_is_given_once_and_a_change_after_it_is_a_later_miss(
    base_store: Store, project: Path
) -> None:
    """The CLI keeps the fingerprint it looked up for the build that follows; a change made in between is built (the
    build reads the files themselves), and the next rebuild is not answered from the older fingerprint."""
    root = base_store.root
    (project / "app" / "data.txt").write_text("kept 1\n")
    options = BuildOptions(context=project)
    kept = fingerprint(options, keep=True)
    data = project / "app" / "data.txt"
    info = data.stat()
    data.write_text("kept 2\n")  # same size, same mtime: only ctime tells
    os.utime(data, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert fingerprint(options) is kept  # given back once, to this options object only
    assert fingerprint(options) != kept
    fingerprint(options, keep=True)
    assert fingerprint(BuildOptions(context=project)) != kept
    fingerprint(options, keep=True)
    data.write_text("kept 3\n")
    os.utime(data, ns=(info.st_atime_ns, info.st_mtime_ns))
    result = build(options, store=base_store)
    assert _file(root, str(result.image_id), "/copy") == hashlib.sha256(b"kept 3\n").hexdigest().encode()
    again = _pybuild(root, "build", "-q", str(project))
    assert not _took_fast_path(again)  # the kept fingerprint was of "kept 2"
    assert again.stdout.strip() == str(result.image_id)
    assert _took_fast_path(_pybuild(root, "build", "-q", str(project)))


def test_a_build_that_runs_a_step_leaves_the_sandbox_code_to_its_fork_server(tmp_path: Path) -> None:
    """The build process writes requests (exec/requests.py) and never loads the sandbox's own code: only the fork
    server that forks each step's sandbox does (a fork of the build process, started before the frontend loads)."""
    ran_a_step, sandbox = loaded_by_a_build(
        tmp_path,
        "FROM scratch\nCOPY hello /hello\n",
        {"hello": "hi\n"},
        ["buildkit_py.exec.linux", "buildkit_py.exec.sandbox"],
    )
    assert ran_a_step and not sandbox
