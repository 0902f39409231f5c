"""Shared test helpers: a busybox base built by pybuild itself, reading images back, talking to Docker."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from buildkit_py.image.stored import image_config

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO / "testdata"
SHARED = REPO.parent / "shared"
BUSYBOX = Path("/bin/busybox")
BASE_IMAGE = "pybuild-test/busybox:latest"


def required_tool(name: str) -> str:
    """The path of a command the tests use; scripts/install-deps.sh installs each, so a missing one fails."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: scripts/install-deps.sh installs what the tests need")
    return path


def base_context(tmp: Path) -> Path:
    """The busybox base image's context: testdata/base-busybox plus the host's static busybox."""
    context = tmp / "base-busybox"
    shutil.copytree(TESTDATA / "base-busybox", context)
    shutil.copy2(BUSYBOX, context / "busybox")
    return context


@dataclass(frozen=True)
class Entry:
    """A flattened filesystem entry, as the comparison with Docker sees it (no mtimes)."""

    path: str
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    content: str
    link: str


_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "file",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
}


def flatten_layers(layers: Iterable[BinaryIO]) -> dict[str, Entry]:
    """Apply layer tars in order (whiteouts included) and return the resulting tree."""
    tree: dict[str, Entry] = {}
    for layer in layers:
        hardlinks: dict[str, Entry] = {}
        with tarfile.open(fileobj=layer, mode="r|*") as archive:
            for member in archive:
                path = "/" + member.name.strip("/").removeprefix("./")
                if path == "/":
                    continue
                directory, _, base = path.rpartition("/")
                if base == ".wh..wh..opq":
                    for key in [k for k in tree if k.startswith(directory + "/")]:
                        del tree[key]
                    continue
                if base.startswith(".wh."):
                    hidden = f"{directory}/{base[4:]}"
                    for key in [k for k in tree if k == hidden or k.startswith(hidden + "/")]:
                        del tree[key]
                    continue
                if member.islnk():
                    target = hardlinks.get("/" + member.linkname.strip("/")) or tree["/" + member.linkname.strip("/")]
                    entry = Entry(path, "file", member.mode, member.uid, member.gid, target.size, target.content, "")
                else:
                    content = ""
                    if member.isreg():
                        extracted = archive.extractfile(member)
                        assert extracted is not None
                        content = hashlib.sha256(extracted.read()).hexdigest()
                    entry = Entry(
                        path,
                        _KINDS.get(member.type, "other"),
                        member.mode,
                        member.uid,
                        member.gid,
                        member.size if member.isreg() else 0,
                        content,
                        member.linkname if member.issym() else "",
                    )
                if entry.kind != "dir" or tree.get(path, entry).kind != "dir":
                    for key in [k for k in tree if k.startswith(path + "/")]:
                        del tree[key]
                tree[path] = entry
                hardlinks[path] = entry
    return tree


def pybuild_tree(store: object, name: str) -> dict[str, Entry]:
    image_id = store.resolve(name)  # type: ignore[attr-defined]
    config = image_config(store, image_id)  # type: ignore[arg-type]
    streams = [store.layers.open(diff_id) for diff_id in config.diff_ids]  # type: ignore[attr-defined]
    try:
        return flatten_layers(streams)
    finally:
        for stream in streams:
            stream.close()


def docker_tree(name: str) -> dict[str, Entry]:
    """The flattened filesystem of a Docker image, read from `docker save` (not from a container)."""
    import json

    saved = subprocess.run(["docker", "save", name], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        layers = [io.BytesIO(archive.extractfile(path).read()) for path in manifest[0]["Layers"]]  # type: ignore[union-attr]
    return flatten_layers(layers)


def docker_config(name: str) -> dict[str, object]:
    import json

    output = subprocess.run(["docker", "image", "inspect", name], check=True, capture_output=True).stdout
    config: dict[str, object] = json.loads(output)[0]["Config"]
    return config


def loaded_by_a_build(tmp_path: Path, dockerfile: str, files: dict[str, str], modules: Iterable[str]) -> list[bool]:
    """Build `dockerfile` with `files` through the CLI in a new process; for each of `modules`, whether that process
    (not its sandbox fork server) had loaded it by the end. The build must succeed."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (context / name).write_text(text)
    names = list(modules)
    code = (
        "import json, sys\n"
        "from buildkit_py.cli.main import main\n"
        f"status = main(['--root', {str(tmp_path / 'root')!r}, 'build', '-q', {str(context)!r}])\n"
        f"print(json.dumps([status, [name in sys.modules for name in {names!r}]]))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    status, loaded = json.loads(completed.stdout.splitlines()[-1])
    assert status == 0, completed.stderr[-3000:]
    return [bool(flag) for flag in loaded]
