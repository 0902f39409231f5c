"""Bytes moving for `save`, `build -o`, `push` and `pull`, seen as a user sees them: on a terminal (a pty), a bar per
layer that ends at 100% of the layer's size; off a terminal, only the commands' own lines."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_helpers import REPO, Pybuild, build_base, unique
from helpers import BASE_IMAGE

LAYER_BYTES = 30_000_000


def in_terminal(argv: list[str], timeout: float = 300) -> tuple[int, str]:
    """Run `argv` with its stderr on a 120-column pty (stdout a pipe, as `save > file` has it); the exit status and
    everything the terminal got."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, cwd=REPO, close_fds=True
    )
    os.close(slave)
    received = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                process.kill()
                raise AssertionError(f"no output for {timeout}s: {received.decode(errors='replace')}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the pty's other end is gone
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
    return process.wait(timeout=timeout), received.decode(errors="replace")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pybuild, str]]:
    root = tmp_path_factory.mktemp("transfer-root")
    build_base(root, tmp_path_factory.mktemp("base"))
    pb = Pybuild(root)
    context = tmp_path_factory.mktemp("context")
    (context / "blob").write_bytes(os.urandom(LAYER_BYTES))  # random: the pushed gzip blob is as large
    (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY blob /blob\n")
    tag = f"transfer/{unique('img')}:1"
    pb.ok("build", "--progress=quiet", "-t", tag, str(context), timeout=300)
    yield pb, tag


def _layers(pb: Pybuild, tag: str) -> list[str]:
    [inspected] = json.loads(pb.ok("inspect", tag))
    layers: list[str] = inspected["RootFS"]["Layers"]
    return [layer.split(":")[1][:12] for layer in layers]


def _finished(item: str, action: str, screen: str) -> bool:
    return re.search(rf"{item}: {action}: 100%\|[^|\r\n]*\| ", screen) is not None


def test_save_shows_each_layer_written(image: tuple[Pybuild, str], tmp_path: Path) -> None:
    pb, tag = image
    status, screen = in_terminal(pb.argv("save", "-o", str(tmp_path / "out.tar"), tag))
    assert status == 0, screen
    for item in _layers(pb, tag):
        assert _finished(item, "Writing", screen), (item, screen)
    assert "30.0M/30.0M" in screen  # the COPY's layer: the file and its tar headers, in tqdm's units
    quiet = pb.run("save", "-o", str(tmp_path / "again.tar"), tag)
    assert quiet.returncode == 0 and quiet.stderr == ""  # off a terminal, `save` says nothing, as Docker's


def test_build_output_shows_each_layer_written(image: tuple[Pybuild, str], tmp_path: Path) -> None:
    pb, tag = image
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {tag}\nENV A=1\n")
    archive = tmp_path / "out.tar"
    status, screen = in_terminal(pb.argv("build", "--progress=tty", "-o", f"type=docker,dest={archive}", str(context)))
    assert status == 0, screen
    for item in _layers(pb, tag):
        assert _finished(item, "Writing", screen), (item, screen)
    assert archive.stat().st_size > LAYER_BYTES


def test_push_and_pull_show_each_blob_moving(image: tuple[Pybuild, str], tmp_path: Path) -> None:
    from registry_fixtures import require_registry_tools, run_registry

    require_registry_tools()
    pb, tag = image
    with run_registry(tmp_path / "registry", None) as registry:
        remote = f"{registry.host}/transfer/app:1"
        pb.ok("tag", tag, remote)
        status, pushed = in_terminal(pb.argv("push", remote))
        assert status == 0, pushed
        assert re.search(r"[0-9a-f]{12}: Pushing: 100%\|[^|\r\n]*\| 30\.\dM/30\.\dM", pushed), pushed
        assert ": Pushed" in pushed and "digest: sha256:" in pushed

        other = Pybuild(tmp_path / "other-root")
        status, pulled = in_terminal(other.argv("pull", remote))
        assert status == 0, pulled
        assert re.search(r"[0-9a-f]{12}: Downloading: 100%\|[^|\r\n]*\| 30\.\dM/30\.\dM", pulled), pulled
        assert "Pull complete" in pulled
        assert _layers(other, remote) == _layers(pb, tag)
