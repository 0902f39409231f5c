"""End-to-end builds with the real executor on a busybox base built by pybuild; images read back from their tars."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, pybuild_tree

from buildkit_py.builder import build
from buildkit_py.errors import BuildError, StepError
from buildkit_py.image.stored import image_config


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def layer_names(store: object, image: str) -> list[list[str]]:
    config = image_config(store, store.resolve(image))  # type: ignore[attr-defined]
    names = []
    for diff_id in config.diff_ids:
        with store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[attr-defined]
            names.append([member.name for member in archive])
    return names


def test_base_image_has_busybox_and_applets(base_store: object) -> None:
    tree = pybuild_tree(base_store, BASE_IMAGE)
    assert tree["/bin/busybox"].kind == "file"
    assert tree["/bin/sh"].kind == "symlink"
    assert "/proc" not in tree and "/dev" not in tree and "/etc/hosts" not in tree


def test_run_copy_env_workdir_user(base_store: object, tmp_path: Path) -> None:
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                "ENV GREETING=hello\n"
                "WORKDIR /app\n"
                "COPY hello.txt .\n"
                'RUN echo "$GREETING $(cat hello.txt)" > out.txt && echo app:x:1000:1000::/home/app:/bin/sh >> /etc/passwd\n'
                "RUN mkdir -p /tmp && chmod 1777 /tmp\n"
                "USER app\n"
                "RUN id -u > /tmp/uid\n"
                'CMD ["cat", "/app/out.txt"]\n'
            ),
            "hello.txt": "world\n",
        },
    )
    result = build(context, tags=["test/basic:1"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/basic:1")
    assert tree["/app/hello.txt"].uid == 0
    assert tree["/tmp/uid"].size == len("1000\n")
    config = result.config.config
    assert config.working_dir == "/app"
    assert config.user == "app"
    assert config.cmd == ("cat", "/app/out.txt")
    assert "GREETING=hello" in config.env
    non_empty = [entry for entry in result.config.history if not entry.empty_layer]
    assert len(non_empty) == len(result.config.diff_ids)


def test_deletions_become_whiteouts(base_store: object, tmp_path: Path) -> None:
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                "RUN mkdir -p /data/sub && echo a > /data/a && echo b > /data/sub/b && echo c > /c\n"
                "RUN rm /c && rm -rf /data && mkdir /data && echo new > /data/new\n"
            )
        },
    )
    build(context, tags=["test/whiteout"], store=base_store)  # type: ignore[arg-type]
    last = layer_names(base_store, "test/whiteout")[-1]
    assert ".wh.c" in last
    assert "data/.wh..wh..opq" in last
    tree = pybuild_tree(base_store, "test/whiteout")
    assert "/c" not in tree and "/data/a" not in tree and "/data/new" in tree


def test_multi_stage_copy_from_and_target(base_store: object, tmp_path: Path) -> None:
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE} AS builder\n"
                "RUN echo built > /artifact\n"
                f"FROM {BASE_IMAGE} AS unused\n"
                "RUN exit 1\n"
                f"FROM {BASE_IMAGE}\n"
                "COPY --from=builder /artifact /artifact\n"
            )
        },
    )
    build(context, tags=["test/multi"], store=base_store)  # type: ignore[arg-type]
    assert pybuild_tree(base_store, "test/multi")["/artifact"].size == len("built\n")
    build(context, tags=["test/multi-builder"], target="builder", store=base_store)  # type: ignore[arg-type]
    assert "/artifact" in pybuild_tree(base_store, "test/multi-builder")


def test_failing_run_names_the_line_and_keeps_earlier_images(base_store: object, tmp_path: Path) -> None:
    context = write(tmp_path, {"Dockerfile": f"FROM {BASE_IMAGE}\n\nRUN echo some output && exit 3\n"})
    before = base_store.resolve(BASE_IMAGE)  # type: ignore[attr-defined]
    with pytest.raises(StepError) as caught:
        build(context, tags=["test/fails"], store=base_store)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("Dockerfile:3: RUN echo some output && exit 3: exit status 3")
    assert "some output" in message
    assert base_store.resolve(BASE_IMAGE) == before  # type: ignore[attr-defined]
    with pytest.raises(BuildError):
        base_store.resolve("test/fails")  # type: ignore[attr-defined]


def test_cli_reports_errors_without_traceback(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    cases = {
        "FROM scratch\nFOO bar\n": "unknown instruction",
        "FROM scratch\nCOPY missing.txt /x\n": "missing.txt",
        "FROM scratch\nCOPY ../outside /x\n": "outside",
        "FROM scratch\nCOPY --from=nosuchstage /a /b\n": "nosuchstage",
        "FROM scratch\nCOPY --bogus=1 a /b\n": "Unknown flag: bogus",
    }
    for dockerfile, expected in cases.items():
        (tmp_path / "Dockerfile").write_text(dockerfile)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "buildkit_py.cli.main",
                "--root",
                str(root),
                "build",
                "--progress=plain",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0, dockerfile
        assert "Traceback" not in result.stderr, result.stderr
        assert expected in result.stderr, result.stderr
        assert "Dockerfile:2" in result.stderr, result.stderr
