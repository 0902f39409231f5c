"""The build graph as DOT: structure of a real plan, cache states before and after builds, SVG through `dot`."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from helpers import BASE_IMAGE, loaded_by_a_build, required_tool

from buildkit_py.builder import build, graph_states
from buildkit_py.cli.main import main
from buildkit_py.errors import BuildError
from buildkit_py.solver.dot import HIT, MISS, NOT_NEEDED, solved_dot, to_dot, write_graph

NODE = re.compile(r"^\s*(op_[0-9a-f]{16}) \[(.*)\];$", re.MULTILINE)
EDGE = re.compile(r"^\s*(op_[0-9a-f]{16}) -> (op_[0-9a-f]{16});$", re.MULTILINE)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """Two stages joined by COPY --from; a token makes every step new to the session's shared store."""
    token = uuid.uuid4().hex
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE} AS helper\n"
        f"RUN echo {token} > /token\n"
        f"FROM {BASE_IMAGE}\n"
        "COPY app.txt /app.txt\n"
        'RUN echo "quoted \\"words\\" and a back\\\\slash" > /quoted\n'
        "COPY --from=helper /token /token\n"
    )
    (tmp_path / "app.txt").write_text("v1\n")
    return tmp_path


def nodes(text: str) -> dict[str, str]:
    return dict(NODE.findall(text))


def label(attributes: str) -> str:
    match = re.search(r'label="((?:[^"\\]|\\.)*)"', attributes)
    assert match is not None
    return match.group(1)


def steps_by_text(text: str) -> dict[str, str]:
    """Step label's first line without its number -> the node's attributes."""
    found: dict[str, str] = {}
    for attributes in nodes(text).values():
        first = label(attributes).split("\\n")[0]
        if first.startswith("#"):
            found[first.split(" ", 1)[1]] = attributes
    return found


def test_dot_structure_of_a_real_plan(project: Path, base_store: object) -> None:
    found = graph_states(project, store=base_store)  # type: ignore[arg-type]
    text = to_dot(found.graph, found.states, found.reasons, found.numbers)
    assert text.startswith("digraph build {\n") and text.endswith("}\n")
    graph_nodes = nodes(text)
    assert len(graph_nodes) == len(found.graph)  # one node per op: image, context and four steps
    assert len(found.graph) == 6
    expected_edges = {
        (f"op_{d.hex[:16]}", f"op_{c.hex[:16]}") for c in found.graph.topological() for d in found.graph.inputs_of(c)
    }
    assert set(EDGE.findall(text)) == expected_edges
    # One box per stage; the base image both stages read stays outside them, as does the build context.
    assert text.count("subgraph cluster_") == 2
    assert 'label="stage helper";' in text and 'label="stage-1";' in text
    sources = [a for a in graph_nodes.values() if not label(a).startswith("#")]
    assert sorted(label(a) for a in sources) == ["build context", f"image {BASE_IMAGE}"]
    assert any('shape="cylinder"' in a for a in sources) and any('shape="folder"' in a for a in sources)
    steps = steps_by_text(text)
    token = project.joinpath("Dockerfile").read_text().splitlines()[1].split()[2]
    assert set(steps) == {
        f"RUN echo {token} > /token",
        "COPY app.txt /app.txt",
        'RUN echo \\"quoted \\\\\\"words\\\\\\" and a back\\\\\\\\slash\\" > /quoted',
        "COPY --from=helper /token /token",
    }
    numbers = sorted(int(label(a).split(" ")[0][1:]) for a in steps.values())
    assert numbers == [1, 2, 3, 4]
    # Nothing was built yet: every step is a miss, orange, with its reason.
    assert set(found.states.values()) == {MISS}
    for attributes in steps.values():
        assert 'fillcolor="#ffc27a"' in attributes and "miss: " in label(attributes)
    assert "miss: no earlier build of this step" in label(steps["COPY app.txt /app.txt"])


def test_states_after_builds_and_a_changed_file(project: Path, base_store: object) -> None:
    first = build(project, store=base_store)  # type: ignore[arg-type]
    graph = first.plan.graph.subgraph_for([first.plan.target])
    assert len(steps_by_text(solved_dot(graph, first.stats))) == 4
    for attributes in steps_by_text(solved_dot(graph, first.stats)).values():
        assert 'class="miss"' in attributes

    again = build(project, store=base_store)  # type: ignore[arg-type]
    steps = steps_by_text(solved_dot(graph, again.stats))
    # The last step hits; nothing beneath it was needed.
    assert 'class="hit"' in steps["COPY --from=helper /token /token"]
    assert 'fillcolor="#b8e6a8"' in steps["COPY --from=helper /token /token"]
    others = [a for name, a in steps.items() if name != "COPY --from=helper /token /token"]
    assert others and all('class="not-needed"' in a and 'fillcolor="#e4e4e4"' in a for a in others)

    (project / "app.txt").write_text("v2\n")
    found = graph_states(project, store=base_store)  # type: ignore[arg-type]
    states = {found.graph.meta(d).name.split("] ", 1)[1]: s for d, s in found.states.items()}
    assert states["COPY app.txt /app.txt"] == MISS
    assert states["COPY --from=helper /token /token"] == MISS
    assert [s for n, s in states.items() if n.startswith("RUN echo") and "token" in n] == [HIT]
    text = to_dot(found.graph, found.states, found.reasons, found.numbers)
    assert "miss: files changed: app.txt" in label(steps_by_text(text)["COPY app.txt /app.txt"])
    assert NOT_NEEDED not in found.states.values()


def test_write_graph_dot_and_unknown_suffix(tmp_path: Path) -> None:
    write_graph(tmp_path / "g.dot", "digraph build {\n}\n")
    assert (tmp_path / "g.dot").read_text() == "digraph build {\n}\n"
    with pytest.raises(BuildError, match=r"\.dot, \.gv, \.svg"):
        write_graph(tmp_path / "g.txt", "digraph build {\n}\n")


def test_svg_through_dot_and_the_cli(project: Path, base_store: object, session_root: Path, tmp_path: Path) -> None:
    required_tool("dot")
    svg = tmp_path / "graph.svg"
    assert main(["--root", str(session_root), "graph", str(project), "-o", str(svg)]) == 0
    tree = ElementTree.parse(svg)
    groups = [g for g in tree.iter("{http://www.w3.org/2000/svg}g") if g.get("class", "").startswith("node")]
    assert len(groups) == 6
    assert sum(1 for g in tree.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "cluster") == 2
    # dot accepted the escaped quotes and backslash, and shows them as written in the Dockerfile.
    texts = " ".join(t.text or "" for t in tree.iter("{http://www.w3.org/2000/svg}text"))
    assert 'RUN echo "quoted \\"words\\" and a back\\\\slash" > /quoted' in texts

    built = tmp_path / "built.svg"
    status = main(["--root", str(session_root), "build", "-q", "--graph", str(built), str(project)])
    assert status == 0 and ElementTree.parse(built).getroot().tag.endswith("svg")


def test_svg_without_dot_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BuildError, match="`dot` is not installed"):
        write_graph(tmp_path / "g.svg", "digraph build {\n}\n")
    assert not (tmp_path / "g.svg").exists()


def never_built(project: Path) -> Path:
    """The project with content of its own, so that no step's key is one an earlier test built."""
    (project / "app.txt").write_text(uuid.uuid4().hex)
    return project


def graph_json_of(project: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["--root", str(root), "graph", "--format", "json", str(project)]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_json_of_a_multi_stage_build_and_its_critical_path(
    project: Path, base_store: object, session_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = graph_json_of(never_built(project), session_root, capsys)
    nodes = {node["id"]: node for node in document["nodes"]}
    assert len(nodes) == 6
    steps = {node["name"].split("] ", 1)[1]: node for node in nodes.values() if node["number"] is not None}
    token_run = next(name for name in steps if name.startswith("RUN echo") and "token" in name)
    quoted_run = next(name for name in steps if "quoted" in name)
    copy_app, copy_from = "COPY app.txt /app.txt", "COPY --from=helper /token /token"
    assert set(steps) == {token_run, quoted_run, copy_app, copy_from}
    assert sorted(node["number"] for node in steps.values()) == [1, 2, 3, 4]
    assert steps[token_run]["stage"] == "helper" and steps[copy_app]["stage"] == "stage-1"
    assert all(node["kind"] in ("exec", "file") for node in steps.values())
    assert all(node["cache"] == "miss" and node["reason"] and node["duration"] is None for node in steps.values())
    sources = [node for node in nodes.values() if node["number"] is None]
    assert sorted(node["name"] for node in sources) == ["build context", f"image {BASE_IMAGE}"]
    assert all(node["cache"] is None for node in sources)
    edges = {(edge["from"], edge["to"]) for edge in document["edges"]}
    by_name = {name: node["id"] for name, node in steps.items()}
    assert (by_name[copy_app], by_name[quoted_run]) in edges
    assert (by_name[quoted_run], by_name[copy_from]) in edges
    assert (by_name[token_run], by_name[copy_from]) in edges
    assert len(edges) == 6  # and the base image into each stage's first step, the context into COPY app.txt
    # Nothing ran yet: the longest chain by step count is the final stage's three steps.
    critical = document["critical_path"]
    assert critical["unit"] == "steps" and critical["length"] == 3
    assert critical["steps"] == [by_name[copy_app], by_name[quoted_run], by_name[copy_from]]
    assert critical["numbers"] == [steps[name]["number"] for name in (copy_app, quoted_run, copy_from)]

    build(project, store=base_store)  # type: ignore[arg-type]
    document = graph_json_of(project, session_root, capsys)
    steps = {node["name"].split("] ", 1)[1]: node for node in document["nodes"] if node["number"] is not None}
    assert all(node["cache"] in ("hit", "not needed") for node in steps.values())
    took = {name: node["duration"] for name, node in steps.items()}
    assert all(isinstance(seconds, float) and seconds > 0 for seconds in took.values())
    # By recorded run times: whichever chain into the last step took longer.
    chains = [(copy_app, quoted_run, copy_from), (token_run, copy_from)]
    longest = max(chains, key=lambda chain: sum(took[name] for name in chain))
    critical = document["critical_path"]
    assert critical["unit"] == "seconds"
    assert critical["steps"] == [steps[name]["id"] for name in longest]
    assert critical["length"] == pytest.approx(sum(took[name] for name in longest))


def test_dot_output_reports_the_critical_path_on_stderr(
    project: Path, base_store: object, session_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(session_root), "graph", str(never_built(project))]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("digraph build {\n")
    lines = captured.err.splitlines()
    assert lines[0] == "critical path: 3 steps (no step has run yet: the longest chain by step count)"
    assert [line.split("] ", 1)[1] for line in lines[1:]] == [
        "COPY app.txt /app.txt",
        'RUN echo "quoted \\"words\\" and a back\\\\slash" > /quoted',
        "COPY --from=helper /token /token",
    ]


def test_the_build_never_imports_networkx(tmp_path: Path) -> None:
    assert loaded_by_a_build(tmp_path, "FROM scratch\nCOPY a /a\nENV A=1\n", {"a": "a\n"}, ["networkx"]) == [False]


def test_link_merges_and_downloads_are_drawn_as_sources_without_numbers(base_store: object, tmp_path: Path) -> None:
    """COPY --link's merge and ADD's download are ops of their own, but no steps: no number, no cache state."""
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY --link app.txt /app.txt\nADD http://127.0.0.1:9/none.txt /none.txt\n"
    )
    (tmp_path / "app.txt").write_text("v1\n")
    from buildkit_py.builder import build_options, plan_build

    plan = plan_build(base_store, build_options(tmp_path))  # type: ignore[arg-type]
    graph = plan.graph.subgraph_for([plan.target])
    text = to_dot(graph, {}, {}, {})
    labels = sorted(label(attributes) for attributes in nodes(text).values())
    assert "link" in labels and "download http://127.0.0.1:9/none.txt" in labels
    from buildkit_py.solver.dot import step_numbers

    numbered = step_numbers(graph)
    assert sorted(graph.meta(digest).instruction for digest in numbered) == [
        "ADD http://127.0.0.1:9/none.txt /none.txt",
        "COPY --link app.txt /app.txt",
    ]
