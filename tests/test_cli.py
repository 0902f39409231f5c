"""The pybuild command line over a real store: build from stdin, list, inspect, tag, remove, save."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from helpers import BASE_IMAGE


def pybuild(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        check=False,
    )


def test_build_from_stdin_then_images_inspect_tag_rmi_save(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    dockerfile = f'FROM {BASE_IMAGE}\nLABEL from=stdin\nRUN echo hi > /hi\nCMD ["cat", "/hi"]\n'.encode()
    iidfile = tmp_path / "iid"
    built = pybuild(
        root, "build", "-f", "-", "-t", "cli/app:1", "--iidfile", str(iidfile), str(tmp_path), stdin=dockerfile
    )
    assert built.returncode == 0, built.stderr
    image_id = iidfile.read_text()
    assert image_id.startswith("sha256:")

    listing = pybuild(root, "images").stdout
    assert "cli/app" in listing and image_id[7:19] in listing

    inspected = json.loads(pybuild(root, "inspect", "cli/app:1").stdout)[0]
    assert inspected["Id"] == image_id
    assert inspected["Config"]["Labels"] == {"from": "stdin"}
    assert inspected["Config"]["Cmd"] == ["cat", "/hi"]

    assert pybuild(root, "tag", "cli/app:1", "cli/other:2").returncode == 0
    assert "cli/other" in pybuild(root, "images").stdout

    saved = tmp_path / "app.tar"
    assert pybuild(root, "save", "-o", str(saved), "cli/app:1").returncode == 0
    with tarfile.open(saved) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["cli/app:1"]

    removed = pybuild(root, "rmi", "cli/other:2")
    assert removed.returncode == 0 and "Untagged: cli/other:2" in removed.stdout
    missing = pybuild(root, "inspect", "cli/other:2")
    assert missing.returncode != 0 and "No such image" in missing.stderr


def test_history_names_dockerfile_lines(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\n\nRUN echo layer > /layer\n")
    assert pybuild(root, "build", "-q", "-t", "cli/history", str(tmp_path)).returncode == 0
    history = pybuild(root, "history", "--no-trunc", "cli/history").stdout
    assert "Dockerfile:3" in history and "echo layer" in history


def test_every_command_explains_itself() -> None:
    from buildkit_py.cli.main import make_parser

    parser = make_parser()
    help_text = io.StringIO()
    parser.print_help(help_text)
    for command in ("build", "images", "history", "inspect", "tag", "rmi", "save", "load", "push", "pull", "analyze"):
        assert command in help_text.getvalue()
        result = subprocess.run(
            [sys.executable, "-m", "buildkit_py.cli.main", command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and "usage: pybuild" in result.stdout, command


def test_unknown_image_is_a_clear_error(tmp_path: Path) -> None:
    result = pybuild(tmp_path / "empty-root", "inspect", "nothing/here")
    assert result.returncode == 1
    assert "No such image" in result.stderr and "Traceback" not in result.stderr


def test_build_ends_with_its_records_checkpointed(tmp_path: Path) -> None:
    """`pybuild build` skips the interpreter's teardown; it closes its store first, so the database holds every
    record of the build (the write-ahead log is checkpointed and gone) when the command returns, no-op or not."""
    root = tmp_path / "root"
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    (context / "hello").write_text("hi\n")
    for _ in ("built", "no-op"):
        built = pybuild(root, "build", "-q", "-t", "cli/checkpointed:1", str(context))
        assert built.returncode == 0, built.stderr
        assert not (root / "meta.db-wal").exists()
        assert "cli/checkpointed" in pybuild(root, "images").stdout
