"""pybuild diff: layers paired by digest, then step, then position; files by content; sizes exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from analyze_images import BASE, F, make_image

from buildkit_py.analyze.imagediff import diff
from buildkit_py.cli.main import main
from buildkit_py.store import Store

OLD = [
    BASE,
    ("COPY app /app", [F("app/"), F("app/main", 5000), F("app/gone", 700), F("app/same", 30, data=b"x" * 30)]),
    ("RUN make", [F("app/"), F("app/out", 9000)]),
]
NEW = [
    BASE,
    (
        "COPY app /app",
        [F("app/"), F("app/main", 3000), F("app/new", 400), F("app/same", 30, data=b"x" * 30, mode=0o755)],
    ),
    ("RUN make", [F("app/"), F("app/out", 9000)]),
    ("RUN extra", [F("extra", 50)]),
]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    with Store(tmp_path / "root") as store:
        make_image(store, "app:old", OLD)
        make_image(store, "app:new", NEW)
    return tmp_path / "root"


def test_layers_and_files(root: Path) -> None:
    with Store(root) as store:
        result = diff(store, "app:old", "app:new")
    assert result.size_delta == (1000 + 3430 + 9000 + 50) - (1000 + 5730 + 9000)
    assert [(p.a.index if p.a else None, p.b.index if p.b else None, p.match) for p in result.layers] == [
        (0, 0, "shared"),
        (1, 1, "step"),
        (2, 2, "shared"),
        (None, 3, "only-b"),
    ]
    assert [(item.path, item.change, item.delta, item.detail) for item in result.files] == [
        ("/app/main", "changed", -2000, "content"),
        ("/app/gone", "removed", -700, ""),
        ("/app/new", "added", 400, ""),
        ("/extra", "added", 50, ""),
        ("/app/same", "changed", 0, "mode"),
    ]


def test_cli_json_and_table(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(root), "diff", "app:old", "app:new", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["sizeDeltaBytes"] == -2250
    assert document["files"]["removed"] == [{"file": "/app/gone", "sizeA": 700, "sizeB": 0, "sizeDelta": -700}]
    assert [layer["match"] for layer in document["layers"]] == ["shared", "step", "shared", "only-b"]
    assert main(["--root", str(root), "diff", "app:old", "app:new"]) == 0
    out = capsys.readouterr().out
    assert "size: -2.3 kB (-2250 bytes)" in out
    assert "Files added: 2 (+450 B)" in out and "-2.0 kB  /app/main  [content]" in out
