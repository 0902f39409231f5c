"""Two `pybuild build` processes on one store, whose steps use one cache mount at the same time: `shared` lets both
in at once, `private` gives each its own folder, `locked` lets one in at a time.

The steps meet through a second, shared cache mount (the rendezvous), which the test also reads and writes on disk,
so that what each step saw is decided by the sharing mode and not by how fast the machine is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import BASE_IMAGE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root for namespaces and overlayfs")

WAIT_SECONDS = 120.0  # a bound on waiting for the other build, never an assertion about speed
_STEP_WAIT = "i=0; while [ ! -e {path} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"


def start(root: Path, context: Path, tag: str, me: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buildkit_py.cli.main",
            "--root",
            str(root),
            "build",
            "--progress=plain",
            "-t",
            tag,
            "--build-arg",
            f"ME={me}",
            str(context),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=WAIT_SECONDS * 2)
    assert process.returncode == 0, output
    return output


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def cache_folder(store: Any, cache_id: str, instance: int = 0) -> Path:
    for record in store.cache_mounts.records():
        if (record.id, record.instance) == (cache_id, instance):
            return Path(store.cache_mounts.folder, record.folder)
    return Path("/nonexistent")


def image_text(store: Any, tag: str, path: str) -> str:
    import tarfile

    from buildkit_py.image.stored import image_config

    found = ""
    for diff_id in image_config(store, store.resolve(tag)).diff_ids:
        with store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if "/" + member.name == path and member.isreg():
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    found = extracted.read().decode()
    return found


def project(folder: Path, step: str) -> Path:
    """A Dockerfile whose step is new to the cache (a cache mount's id is not part of the key, as in BuildKit)."""
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nARG ME\n{step}; : {folder.parent.name}\n")
    return folder


@pytest.mark.parametrize("sharing", ["shared", "private"])
def test_shared_lets_both_in_and_private_gives_each_its_own(base_store: Any, tmp_path: Path, sharing: str) -> None:
    unique = uuid.uuid4().hex[:8]
    meet = f"meet-{unique}"
    step = (
        f"RUN --mount=type=cache,id=data-{unique},target=/data,sharing={sharing} "
        f"--mount=type=cache,id={meet},target=/meet "
        'touch /data/$ME /meet/$ME; OTHER=$([ "$ME" = a ] && echo b || echo a); '
        + _STEP_WAIT.format(path="/meet/$OTHER")
        + "; ls /data > /seen"
    )
    context = project(tmp_path / "project", step)
    tags = {me: f"sharing/{sharing}-{me}-{unique}" for me in ("a", "b")}
    processes = {me: start(base_store.root, context, tags[me], me) for me in ("a", "b")}
    outputs = {me: finish(process) for me, process in processes.items()}
    seen = {me: image_text(base_store, tags[me], "/seen").split() for me in ("a", "b")}
    rendezvous = cache_folder(base_store, meet) / "data"
    assert sorted(os.listdir(rendezvous)) == ["a", "b"], outputs  # both steps were inside at once
    if sharing == "shared":
        assert seen == {"a": ["a", "b"], "b": ["a", "b"]}, outputs
    else:
        assert seen == {"a": ["a"], "b": ["b"]}, outputs
        instances = [record for record in base_store.cache_mounts.records() if record.id == f"data-{unique}"]
        assert sorted(record.instance for record in instances) == [0, 1]
        listed = subprocess.run(
            [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(base_store.root), "cache", "du"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"cache mount data-{unique} (private copy 1)" in listed


def _lock_waiters(lock_file: Path) -> int:
    """How many flock requests wait on `lock_file`, from /proc/locks (`->` marks a blocked request)."""
    inode = os.stat(lock_file).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and f":{inode} " in line)


def test_locked_lets_one_step_in_at_a_time(base_store: Any, tmp_path: Path) -> None:
    unique = uuid.uuid4().hex[:8]
    lock_id, meet = f"locked-{unique}", f"meet-{unique}"
    step = (
        f"RUN --mount=type=cache,id={lock_id},target=/locked,sharing=locked "
        f"--mount=type=cache,id={meet},target=/meet "
        "if [ -e /locked/inside ]; then echo overlap > /result; else echo alone > /result; fi; "
        "touch /locked/inside /meet/$ME; " + _STEP_WAIT.format(path="/meet/go") + "; rm /locked/inside"
    )
    context = project(tmp_path / "project", step)
    tags = {me: f"sharing/locked-{me}-{unique}" for me in ("a", "b")}
    first = start(base_store.root, context, tags["a"], "a")
    try:
        wait_for(lambda: (cache_folder(base_store, meet) / "data" / "a").exists(), "the first step to be inside")
        second = start(base_store.root, context, tags["b"], "b")
        lock_file = cache_folder(base_store, lock_id) / "lock"
        meet_data = cache_folder(base_store, meet) / "data"
        # The second step either waits on the lock (right) or gets in beside the first (wrong, and seen below).
        wait_for(
            lambda: _lock_waiters(lock_file) > 0 or (meet_data / "b").exists(), "the second step to reach the lock"
        )
    finally:
        (cache_folder(base_store, meet) / "data" / "go").touch()
    outputs = [finish(first), finish(second)]
    results = [image_text(base_store, tags[me], "/result") for me in ("a", "b")]
    assert results == ["alone\n", "alone\n"], outputs


def test_ctrl_c_while_waiting_for_a_locked_cache_stops_the_build(base_store: Any, tmp_path: Path) -> None:
    """A step waiting for a cache another holds is interrupted like any other: exit status 130, and the lock it
    waited for is left to its holder."""
    import fcntl
    import signal

    unique = uuid.uuid4().hex[:8]
    lock_id = f"held-{unique}"
    context = project(tmp_path / "project", f"RUN --mount=type=cache,id={lock_id},target=/c,sharing=locked true")
    with base_store.cache_mounts.use(lock_id, "locked", lambda path: path.mkdir()):  # held here, as by a step
        lock_file = cache_folder(base_store, lock_id) / "lock"
        waiter = start(base_store.root, context, f"sharing/held-{unique}", "a")
        wait_for(lambda: _lock_waiters(lock_file) > 0, "the step to wait for the lock")
        waiter.send_signal(signal.SIGINT)
        output, _ = waiter.communicate(timeout=WAIT_SECONDS)
        assert waiter.returncode == 130, output
        assert "Traceback" not in output
        probe = os.open(lock_file, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # still held here: nothing took it on the way out
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
