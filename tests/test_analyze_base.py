"""`pybuild analyze` and `pybuild diff` run as a user runs them, on images pybuild builds on the busybox base: one
finding per cause however many folders it spans, base-image findings that suggest a slimmer base, the caches of npm,
yarn, Go and cargo, `--ci --exclude-base`, and layers paired by content or step, never by position alone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from container_helpers import Pybuild, build_base, unique
from helpers import BASE_IMAGE

APT_LISTS = 400_000


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pybuild]:
    root = tmp_path_factory.mktemp("analyze-root")
    build_base(root, tmp_path_factory.mktemp("base"))
    yield Pybuild(root)


def build(pb: Pybuild, tmp: Path, dockerfile: str, *extra: str, files: dict[str, bytes] | None = None) -> str:
    """Build `dockerfile` with the CLI; returns the image's (unique) tag."""
    context = tmp / unique("ctx")
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        (context / name).write_bytes(data)
    tag = unique("analyze") + ":1"
    pb.ok("build", "--progress=quiet", "-t", tag, *extra, str(context), timeout=300)
    return tag


def analyze_json(pb: Pybuild, tag: str, *flags: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(pb.ok("analyze", "--format", "json", "--no-file-list", *flags, tag))
    return document


def findings(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [finding for finding in document["pybuild"]["findings"] if finding["kind"] == kind]


def base_image(pb: Pybuild, tmp: Path) -> str:
    """A base image, as a team's own base would be: apt lists, byte-compiled Python in many packages, and a tool."""
    return build(
        pb,
        tmp,
        f"FROM {BASE_IMAGE}\n"
        "RUN mkdir -p /var/lib/apt/lists /opt && "
        f"dd if=/dev/zero of=/var/lib/apt/lists/deb.debian.org_Packages bs=1000 count={APT_LISTS // 1000} && "
        "for p in $(seq 1 30); do mkdir -p /usr/lib/python3/dist-packages/pkg$p/__pycache__ && "
        "dd if=/dev/zero of=/usr/lib/python3/dist-packages/pkg$p/__pycache__/m.cpython-311.pyc bs=100 count=$p; "
        "done && dd if=/dev/zero of=/opt/tool bs=1000 count=50\n",
    )


def test_one_finding_per_cause_with_its_count_and_top_paths(pb: Pybuild, tmp_path: Path) -> None:
    tag = build(
        pb,
        tmp_path,
        f"FROM {BASE_IMAGE}\n"
        "RUN for p in $(seq 1 40); do mkdir -p /app/lib/pkg$p/__pycache__ && "
        "dd if=/dev/zero of=/app/lib/pkg$p/__pycache__/m.pyc bs=100 count=$p 2>/dev/null; done\n",
    )
    [finding] = findings(analyze_json(pb, tag), "package-cache")
    assert finding["fileCount"] == 40
    assert finding["wastedBytes"] == sum(range(1, 41)) * 100
    assert finding["paths"] == [f"/app/lib/pkg{p}/__pycache__/m.pyc" for p in (40, 39, 38, 37, 36)]
    assert (
        "40 files" in finding["cause"] and "in 40 folders, the largest /app/lib/pkg40/__pycache__" in finding["cause"]
    )
    assert "PYTHONDONTWRITEBYTECODE" in finding["fix"]
    table = pb.ok("analyze", tag)
    assert len(re.findall(r"^\s+\d+\. \[package-cache\]", table, re.MULTILINE)) == 1


def test_findings_in_the_base_image_suggest_a_slimmer_base(pb: Pybuild, tmp_path: Path) -> None:
    base = base_image(pb, tmp_path)
    app = build(
        pb,
        tmp_path,
        f"FROM {base}\nRUN rm /opt/tool && mkdir -p /root/.npm/_cacache && "
        "dd if=/dev/zero of=/root/.npm/_cacache/index bs=1000 count=7\nCOPY app.js /app/app.js\n",
        files={"app.js": b"console.log(1)\n"},
    )
    document = analyze_json(pb, app)
    layers = document["layer"]
    assert document["pybuild"]["baseLayers"] == 3  # busybox's two layers and the base's RUN
    assert [layer["dockerfileLine"] for layer in layers[3:]] == ["Dockerfile:2", "Dockerfile:3"]
    in_base = [finding for finding in document["pybuild"]["findings"] if finding["inBaseImage"]]
    assert {(f["kind"], f["layer"]) for f in in_base} == {("package-cache", 2), ("deleted-later", 2)}
    for finding in in_base:
        assert "base image" in finding["fix"]
        assert "RUN" not in finding["fix"] and "COPY" not in finding["fix"], finding
    caches = {f["cause"].split(" left in ")[0]: f for f in findings(document, "package-cache")}
    assert set(caches) == {"apt package lists", "Python bytecode cache", "npm cache"}
    assert caches["Python bytecode cache"]["fileCount"] == 30 and caches["Python bytecode cache"]["inBaseImage"]
    assert "slimmer base image" in caches["apt package lists"]["fix"]
    npm = caches["npm cache"]
    assert (npm["layer"], npm["inBaseImage"], npm["wastedBytes"]) == (3, False, 7000)
    assert "RUN --mount=type=cache,target=/root/.npm" in npm["fix"]
    [deleted] = findings(document, "deleted-later")
    assert deleted["paths"] == ["/opt/tool"] and "added by the base image (layer 2)" in deleted["cause"]
    assert "saves nothing" in deleted["fix"]
    table = pb.ok("analyze", app)
    assert "(base image)" in table and "the first 3 from the base image" in table


def test_caches_of_npm_yarn_go_and_cargo(pb: Pybuild, tmp_path: Path) -> None:
    folders = {
        "/root/.npm/_cacache": "npm cache",
        "/usr/local/share/.cache/yarn/v6": "yarn cache",
        "/home/node/.cache/yarn/v6": "yarn cache",
        "/root/go/pkg/mod/cache": "Go module cache",
        "/root/.cache/go-build/00": "Go build cache",
        "/root/.cargo/registry/cache": "cargo registry cache",
        "/root/.cargo/git/db": "cargo registry cache",
        "/root/.cache/pip/http": "pip cache",
    }
    script = " && ".join(f"mkdir -p {folder} && echo cached > {folder}/entry" for folder in folders)
    tag = build(pb, tmp_path, f"FROM {BASE_IMAGE}\nRUN {script}\n")
    found = {f["cause"].split(" left in ")[0]: f for f in findings(analyze_json(pb, tag), "package-cache")}
    assert set(found) == set(folders.values())
    assert found["yarn cache"]["fileCount"] == 2 and "in 2 folders" in found["yarn cache"]["cause"]
    assert found["cargo registry cache"]["fileCount"] == 2
    assert "target=/root/go/pkg/mod" in found["Go module cache"]["fix"]
    assert "target=/root/.cache/go-build" in found["Go build cache"]["fix"]
    assert all(not finding["inBaseImage"] for finding in found.values())


def test_ci_can_leave_the_base_image_out_of_the_waste(pb: Pybuild, tmp_path: Path) -> None:
    base = base_image(pb, tmp_path)
    app = build(
        pb,
        tmp_path,
        f"FROM {base}\nRUN rm -rf /var/lib/apt/lists/*\nCOPY app.js /app/app.js\n",
        files={"app.js": b"x" * 100},
    )
    dive = pb.run("analyze", "--ci", app)
    assert dive.returncode == 1, dive.stdout
    assert f"wastedBytes:       {APT_LISTS} bytes" in dive.stdout  # dive's figure: the base's lists, deleted
    assert "FAIL  highestUserWastedPercent" in dive.stdout
    slim = pb.run("analyze", "--ci", "--exclude-base", app)
    assert slim.returncode == 0, slim.stdout
    assert "wastedBytes:       0 bytes" in slim.stdout and "PASS  highestUserWastedPercent" in slim.stdout
    assert "the base image's layers 0-2 left out" in slim.stdout
    assert "Traceback" not in dive.stderr + slim.stderr
    # The flag counts waste the Dockerfile itself makes: the same file written twice above the base still counts.
    twice = build(pb, tmp_path, f"FROM {base}\nRUN echo 1 > /f && dd if=/dev/zero of=/w bs=1000 count=5\nRUN rm /w\n")
    document = analyze_json(pb, twice, "--exclude-base")
    assert document["image"]["inefficientBytes"] == 5000
    assert document["pybuild"]["excludedBaseLayers"] == 3


def test_diff_pairs_by_content_or_step_never_by_position(pb: Pybuild, tmp_path: Path) -> None:
    files = {"a.txt": b"a\n"}
    old = build(
        pb,
        tmp_path,
        f"FROM {BASE_IMAGE}\nCOPY a.txt /a.txt\nRUN head -c 8 /dev/urandom > /one\nRUN echo two > /two\n",
        files=files,
    )
    new = build(
        pb,
        tmp_path,
        f"FROM {BASE_IMAGE}\nCOPY a.txt /a.txt\nRUN echo inserted > /inserted\nRUN head -c 8 /dev/urandom > /one\n"
        "RUN echo TWO > /two\n",
        files=files,
    )
    document = json.loads(pb.ok("diff", "--format", "json", old, new))
    rows = [
        (
            layer["a"]["index"] if layer["a"] else None,
            layer["b"]["index"] if layer["b"] else None,
            layer["match"],
            (layer["b"] or layer["a"])["step"],
        )
        for layer in document["layers"]
    ]
    assert rows == [
        (0, 0, "shared", "COPY busybox /bin/busybox"),
        (1, 1, "shared", "RUN /bin/busybox --install -s /bin"),
        (2, 2, "shared", "COPY a.txt /a.txt"),
        (None, 3, "only-b", "RUN echo inserted > /inserted"),
        (3, 4, "step", "RUN head -c 8 /dev/urandom > /one"),  # the same step, other bytes (random each time)
        (4, None, "only-a", "RUN echo two > /two"),
        (None, 5, "only-b", "RUN echo TWO > /two"),
    ]
    table = pb.ok("diff", old, new)
    assert "position" not in table


def test_where_the_dockerfiles_own_history_starts() -> None:
    from buildkit_py.analyze.layers import own_history_start
    from buildkit_py.image.config import HistoryEntry

    def history(*comments: str) -> list[HistoryEntry]:
        return [HistoryEntry(created="", created_by="x", comment=comment) for comment in comments]

    imported = "Imported from -"
    # A base not built here, then the Dockerfile's lines; a --label entry (no line) at the end is ours too.
    assert own_history_start(history(imported, "buildkit_py: Dockerfile:2", "buildkit_py")) == 1
    # A base pybuild built from its own Dockerfile: our lines start again from the top.
    assert (
        own_history_start(
            history("buildkit_py: Dockerfile:2", "buildkit_py: Dockerfile:3", "buildkit_py: Dockerfile:2")
        )
        == 2
    )
    # A stage built on an earlier stage of the same Dockerfile: one run of increasing lines, all ours.
    assert own_history_start(history(imported, "buildkit_py: Dockerfile:2", "buildkit_py: Dockerfile:5")) == 1
    assert own_history_start(history("buildkit_py: base.Dockerfile:2", "buildkit_py: Dockerfile:3")) == 1
    # Nothing written by pybuild: no base is known.
    assert own_history_start(history(imported, "")) == 2
