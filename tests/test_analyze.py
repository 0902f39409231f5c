"""Analysis of images with known waste: exact wasted bytes, efficiency (dive's rules, computed by hand) and findings.

dive is not installable here, so each expected value is worked out from dive's efficiency.go in the comment above it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from analyze_images import APT, BASE, CHMOD, DELETED, TEN_MB, TWICE, F, make_image

from buildkit_py.analyze import analyze, efficiency
from buildkit_py.analyze.filetree import LayerFiles, read_layer
from buildkit_py.analyze.report_json import export
from buildkit_py.cli.main import main
from buildkit_py.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "root") as opened:
        yield opened


def _layers(*tars: list[F]) -> list[LayerFiles]:
    import io

    from analyze_images import layer_tar

    return [read_layer(io.BytesIO(layer_tar(entries))) for entries in tars]


def test_dives_own_efficiency_case() -> None:
    # dive/filetree/efficiency_test.go TestEfficiency: score 0.75, one inefficient path of 7000 bytes.
    # /etc/nginx has no tar entry of its own, so its whiteout counts as a file (0 bytes), as in dive.
    result = efficiency(
        _layers(
            [F("etc/nginx/nginx.conf", 2000), F("etc/nginx/public", 3000)],
            [F("etc/nginx/nginx.conf", 5000), F("etc/athing", 10000)],
            [F("etc/.wh.nginx")],
        )
    )
    assert result.score == 0.75
    assert [(item.path, item.cumulative_size, item.count) for item in result.inefficient] == [
        ("/etc/nginx/nginx.conf", 7000, 2)
    ]


def test_scratch_image_scores_one() -> None:
    result = efficiency(_layers([F("nothing")], [], []))
    assert result.score == 1.0 and result.inefficient == ()


def test_whiteout_of_a_directory_counts_the_hidden_subtree() -> None:
    # /d is a real directory: its whiteout is worth the subtree (0 + 300 + 200), and /d was a leaf-free node in layer 0,
    # so the path "/d" is seen once and is not inefficient; /d/a and /d/b are not seen again either.
    result = efficiency(_layers([F("d/"), F("d/a", 300), F("d/b", 200)], [F(".wh.d")]))
    assert result.inefficient == ()
    assert result.score == 1.0  # min == cumulative for every path: (300 + 200 + 500) / (300 + 200 + 500)


def test_whiteout_of_a_missing_path_stops_the_layer_as_in_dive() -> None:
    # Leaves are visited by name; ".wh.gone" sorts before "z", its target is not below, and dive abandons the layer.
    result = efficiency(_layers([F("a", 100)], [F(".wh.gone"), F("z", 500)]))
    assert result.score == 1.0
    assert result.size_bytes == 600  # layer sizes still count every header


def test_ten_megabytes_added_then_deleted(store: Store) -> None:
    make_image(store, "deleted", DELETED)
    analysis = analyze(store, "deleted")
    result = analysis.efficiency
    # /bin/busybox: 1000/1000; /big: cumulative 10 MB + 0 (whiteout of a file), smallest 0.
    assert result.wasted_bytes == TEN_MB
    assert result.score == 1000 / (1000 + TEN_MB)
    assert result.size_bytes == 1000 + TEN_MB and result.user_size_bytes == TEN_MB
    assert result.wasted_user_percent == 1.0
    [finding] = analysis.findings
    assert finding.kind == "deleted-later"
    assert (finding.layer, finding.location, finding.wasted_bytes, finding.paths) == (
        1,
        "Dockerfile:2",
        TEN_MB,
        ("/big",),
    )
    assert "deleted by Dockerfile:3 RUN rm /big" in finding.cause
    assert "same RUN" in finding.fix
    assert [(c.added, c.modified, c.removed, c.removed_bytes) for c in analysis.changes] == [
        (1, 0, 0, 0),
        (1, 0, 0, 0),
        (0, 0, 1, TEN_MB),
    ]


def test_chmod_layer_copies_whole_files(store: Store) -> None:
    make_image(store, "chmod", CHMOD)
    analysis = analyze(store, "chmod")
    result = analysis.efficiency
    # /app/a 3000 twice, /app/b 2000 twice, /bin/busybox once: (1000 + 3000 + 2000) / (1000 + 6000 + 4000).
    assert result.wasted_bytes == 10000
    assert result.score == 6000 / 11000
    assert [(item.path, item.count, item.cumulative_size) for item in result.inefficient] == [
        ("/app/a", 2, 6000),
        ("/app/b", 2, 4000),
    ]
    [finding] = analysis.findings
    assert finding.kind == "metadata-copy"
    assert (finding.layer, finding.location, finding.wasted_bytes) == (2, "Dockerfile:3", 5000)
    assert "COPY --chmod" in finding.fix and "Dockerfile:2" in finding.fix


def test_apt_lists_left_in_a_layer(store: Store) -> None:
    make_image(store, "apt", APT)
    analysis = analyze(store, "apt")
    result = analysis.efficiency
    # dive sees /var/lib/apt/lists only as the whiteout's leaf (40000 once): nothing inefficient, score 1.0.
    assert result.wasted_bytes == 0 and result.score == 1.0
    [finding] = analysis.findings
    assert finding.kind == "package-cache"
    assert (finding.layer, finding.wasted_bytes, finding.file_count) == (1, 40000, 2)
    assert "/var/lib/apt/lists" in finding.cause and "rm -rf /var/lib/apt/lists/*" in finding.fix
    assert analysis.changes[2].removed_bytes == 40000


def test_file_in_two_layers(store: Store) -> None:
    make_image(store, "twice", TWICE)
    analysis = analyze(store, "twice")
    assert analysis.efficiency.wasted_bytes == 250
    assert analysis.efficiency.score == (1000 + 100) / (1000 + 250)
    assert analysis.efficiency.reclaimable_bytes == 150
    [finding] = analysis.findings
    assert (finding.kind, finding.layer, finding.wasted_bytes) == ("overwritten", 1, 100)


def test_build_only_path_and_pip_cache(store: Store) -> None:
    make_image(
        store,
        "tmp",
        [
            BASE,
            ("RUN make", [F("tmp/"), F("tmp/build.o", 2_000_000), F("tmp/small", 10)]),
            ("RUN pip install x", [F("root/"), F("root/.cache/"), F("root/.cache/pip/"), F("root/.cache/pip/w", 70)]),
        ],
    )
    kinds = {(f.kind, f.layer, f.wasted_bytes) for f in analyze(store, "tmp").findings}
    assert kinds == {("build-only", 1, 2_000_000), ("package-cache", 2, 70)}


def test_json_uses_dives_export_schema(store: Store) -> None:
    make_image(store, "deleted", DELETED)
    document = export(analyze(store, "deleted"))
    assert set(document) == {"layer", "image", "pybuild"}
    assert set(document["image"]) == {"sizeBytes", "inefficientBytes", "efficiencyScore", "fileReference"}
    assert document["image"]["fileReference"] == [{"count": 2, "sizeBytes": TEN_MB, "file": "/big"}]
    first = document["layer"][1]
    assert {"index", "id", "digestId", "sizeBytes", "command", "fileList"} <= set(first)
    assert first["command"] == "RUN /bin/sh -c dd if=/dev/zero of=/big bs=1M count=10 # buildkit"
    assert first["fileList"] == [
        {
            "path": "big",
            "typeFlag": 48,
            "linkName": "",
            "size": TEN_MB,
            "fileMode": 0o644,
            "uid": 0,
            "gid": 0,
            "isDir": False,
        }
    ]
    assert document["layer"][0]["fileList"][1]["fileMode"] == 0o755 | (1 << 31)  # Go's os.ModeDir
    assert document["pybuild"]["findings"][0]["kind"] == "deleted-later"


def test_cli_analyze_table_and_json(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(store, "chmod", CHMOD)
    root = str(store.root)
    assert main(["--root", root, "analyze", "chmod"]) == 0
    out = capsys.readouterr().out
    assert "efficiency:        54.55 %" in out and "[metadata-copy]" in out and "Dockerfile:3" in out
    assert main(["--root", root, "analyze", "chmod", "--format", "json", "--no-file-list"]) == 0
    assert json.loads(capsys.readouterr().out)["image"]["inefficientBytes"] == 10000


def test_cli_history(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(store, "deleted", DELETED)
    root = str(store.root)
    assert main(["--root", root, "history", "deleted"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[2].startswith("<missing>") and "RUN /bin/sh -c dd if=/dev/zero of=/big bs=1M…" in lines[2]
    assert "10MB" in lines[2] and lines[2].endswith("Dockerfile:2")
    assert main(["--root", root, "history", "-H=false", "--no-trunc", "deleted"]) == 0
    out = capsys.readouterr().out
    assert "10000000" in out and "buildkit_py: Dockerfile:2" in out and "2024-01-01T00:00:02" in out
    assert main(["--root", root, "history", "--format", "json", "deleted"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["Dockerfile"] for record in records] == ["Dockerfile:3", "Dockerfile:2", "Dockerfile:1"]
    assert records[1]["Size"] == "10MB" and records[0]["Size"] == "0B"


# Images built by pybuild itself, on the busybox base (the session's `base_store`).

BUILT_DOCKERFILE = b"""FROM pybuild-test/busybox:latest
RUN dd if=/dev/zero of=/big bs=1000 count=10000
RUN rm /big
RUN mkdir -p /var/lib/apt/lists && dd if=/dev/zero of=/var/lib/apt/lists/pkgs bs=1000 count=40
COPY app.txt /app.txt
RUN chmod 755 /app.txt
"""


def test_built_image_has_the_expected_waste(base_store: Store, tmp_path: Path) -> None:
    from buildkit_py.builder import build

    context = tmp_path / "context"
    context.mkdir()
    (context / "app.txt").write_bytes(b"a" * 3000)
    (context / "Dockerfile").write_bytes(BUILT_DOCKERFILE)
    build(context, tags=["analyze-test:built"], store=base_store)
    analysis = analyze(base_store, "analyze-test:built")
    base = analyze(base_store, "pybuild-test/busybox:latest")
    busybox = base.efficiency.size_bytes
    result = analysis.efficiency
    # dive's rules by hand: /big 10 MB then a whiteout of a file (0); /app.txt 3000 twice; the apt list once.
    assert result.wasted_bytes == 10_000_000 + 6000
    assert result.score == (busybox + 40_000 + 3000) / (busybox + 10_000_000 + 40_000 + 6000)
    kinds = {(f.kind, f.location, f.wasted_bytes) for f in analysis.findings}
    assert ("deleted-later", "Dockerfile:2", 10_000_000) in kinds
    assert ("package-cache", "Dockerfile:4", 40_000) in kinds
    assert ("metadata-copy", "Dockerfile:6", 3000) in kinds
    assert [layer.dockerfile_line for layer in analysis.image.layers][-5:] == [
        "Dockerfile:2",
        "Dockerfile:3",
        "Dockerfile:4",
        "Dockerfile:5",
        "Dockerfile:6",
    ]
