"""The build graph as DOT: structure of a real plan, cache states before and after builds, SVG through `dot`."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from xml.etree import ElementTree

import pytest
from helpers import BASE_IMAGE, required_tool

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
