""".dockerignore rules: every case of shared/conformance/dockerignore.md, read from its tables, plus our own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from buildkit_py.context.dockerignore import (
    IgnoreRules,
    MatchType,
    compile_pattern,
    load_ignore_rules,
    parse_ignore_file,
    read_patterns,
)
from buildkit_py.errors import ContextError
from buildkit_py.gostring import go_clean

CASES_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "dockerignore.md"
_CODE = re.compile(r"`([^`]*)`")


def _document() -> str | None:
    if not CASES_FILE.is_file():
        return None
    return CASES_FILE.read_text(encoding="utf-8")


def _section(document: str, start: str, end: str) -> str:
    return document[document.index(start) : document.index(end, document.index(start))]


def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in ("#", "file line"):
            continue
        rows.append(cells)
    return rows


def _verdict(cell: str) -> bool:
    word = cell.replace("*", "").split()[0]
    assert word in ("true", "false"), cell
    return word == "true"


def _read_cases() -> list[object]:
    document = _document()
    if document is None:
        return []  # no cases: the test fails at collection (pyproject: empty_parameter_set_mark)
    cases: list[object] = []
    for line_cell, result_cell in _table_rows(_section(document, "## Step 1", "## Step 2")):
        line = _CODE.findall(line_cell)[0]
        expected = None if "skipped" in result_cell else _CODE.findall(result_cell)[0]
        cases.append(pytest.param(line, expected, id=repr(line)))
    return cases


def _match_cases() -> list[object]:
    """Rows 1-40 and 43-44 of Step 3: (patterns, path, excluded)."""
    document = _document()
    if document is None:
        return []
    step3 = document[document.index("## Step 3") :]
    cases: list[object] = []
    for number, patterns_cell, path_cell, verdict in _table_rows(step3[: step3.index("Go-`filepath.Match`")]):
        if verdict.startswith("error"):
            continue  # rows 41-42, see _error_cases
        patterns = _CODE.findall(patterns_cell)
        cases.append(pytest.param(patterns, _CODE.findall(path_cell)[0], _verdict(verdict), id=f"row{number}"))
    return cases


def _error_cases() -> list[object]:
    document = _document()
    if document is None:
        return []
    step3 = document[document.index("## Step 3") :]
    patterns: list[object] = []
    for cells in _table_rows(step3[: step3.index("Go-`filepath.Match`")]):
        if len(cells) == 4 and cells[3].startswith("error"):
            patterns.append(pytest.param(_CODE.findall(cells[1])[0], id=f"row{cells[0]}"))
    paragraph = step3[step3.index("Go-`filepath.Match`") : step3.index("## Related")]
    bad_list = next(part for part in paragraph.split(";") if "ErrBadPattern" in part)
    patterns.extend(
        pytest.param(code, id=f"filepath.Match {code!r}") for code in _CODE.findall(bad_list) if code != "ErrBadPattern"
    )
    return patterns


def _filepath_match_cases() -> list[object]:
    document = _document()
    if document is None:
        return []
    paragraph = document[document.index("Go-`filepath.Match`") : document.index("## Related")]
    found = re.findall(r"`([^`]*)` vs `([^`]*)` → (true|false)", paragraph)
    return [pytest.param([p], path, verdict == "true", id=f"{p!r} vs {path!r}") for p, path, verdict in found]


def _compile_cases() -> list[object]:
    document = _document()
    if document is None:
        return []
    step2 = _section(document, "## Step 2", "## Step 3")
    examples = step2[step2.index("Examples of compiled regexps") :]
    cases: list[object] = [
        pytest.param(pattern, MatchType.REGEXP, regex, id=pattern)
        for pattern, regex in re.findall(r"`([^`]+)`→`([^`]+)`", examples)
    ]
    for sentence in examples.split(";"):
        for phrase, kind in (("suffix match", MatchType.SUFFIX), ("prefix match", MatchType.PREFIX)):
            if phrase in sentence:
                cases.extend(pytest.param(p, kind, None, id=p) for p in _CODE.findall(sentence))
        if "exact match" in sentence:
            codes = _CODE.findall(sentence)
            cases.extend(pytest.param(p, MatchType.EXACT, None, id=p) for p in codes)
    return cases


@pytest.mark.parametrize(("line", "expected"), _read_cases())
def test_reading_the_file(line: str, expected: str | None) -> None:
    text = f"# header\n{line}\n"
    assert read_patterns(text) == ([] if expected is None else [expected])
    if expected == "!":
        with pytest.raises(ContextError, match="illegal exclusion pattern"):
            parse_ignore_file(text)
    else:
        assert parse_ignore_file(text).patterns == tuple(read_patterns(text))


@pytest.mark.parametrize(("patterns", "path", "excluded"), _match_cases())
def test_matching(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreRules(tuple(patterns)).excludes(path) is excluded


@pytest.mark.parametrize(("patterns", "path", "excluded"), _filepath_match_cases())
def test_filepath_match_table(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreRules(tuple(patterns)).excludes(path) is excluded


@pytest.mark.parametrize("pattern", _error_cases())
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(ContextError):
        IgnoreRules((pattern,))


@pytest.mark.parametrize(("pattern", "kind", "regex"), _compile_cases())
def test_compiled_form(pattern: str, kind: MatchType, regex: str | None) -> None:
    compiled_kind, compiled_regex = compile_pattern(go_clean(pattern))
    assert compiled_kind is kind
    if regex is not None:
        assert compiled_regex == regex


def test_every_case_was_read() -> None:
    assert _document() is not None, f"{CASES_FILE} is absent"
    assert len(_read_cases()) == 8
    assert len(_match_cases()) == 42  # rows 1-40, 43, 44
    assert len(_error_cases()) == 2 + 6  # rows 41, 42 and the six ErrBadPattern patterns
    assert len(_filepath_match_cases()) == 7
    assert len(_compile_cases()) == 7 + 4 + 1 + 2


# Our own cases ----------------------------------------------------------------------------------------------


def test_reading_details() -> None:
    text = "\ufeffnode_modules\r\n  # not a comment\r\n#comment\n\n  /build/../dist/  \n!  /dist/keep\n"
    assert parse_ignore_file(text).patterns == ("node_modules", "# not a comment", "dist", "!dist/keep")


@pytest.mark.parametrize(
    ("path", "expected"),
    [("", "."), ("a//b/./c/", "a/b/c"), ("/../a", "/a"), ("../../a", "../../a"), ("a/../..", ".."), ("/", "/")],
)
def test_go_clean(path: str, expected: str) -> None:
    assert go_clean(path) == expected


def test_last_match_wins_and_parents() -> None:
    rules = parse_ignore_file("*.log\n!keep.log\nlogs\n!logs/important\nlogs/important/tmp\n")
    assert rules.excludes("a.log")
    assert not rules.excludes("keep.log")
    assert rules.excludes("sub/a.log") is False  # "*" never crosses "/"
    assert rules.excludes("logs/x/y")
    assert not rules.excludes("logs/important/z")
    assert rules.excludes("logs/important/tmp/z", is_dir=False)
    assert not rules.excludes(".")


def test_dockerfile_is_not_special() -> None:
    rules = parse_ignore_file("*\n")
    assert rules.excludes("Dockerfile")
    assert rules.excludes(".dockerignore")


@pytest.mark.parametrize(
    ("text", "directory", "expected"),
    [
        ("node_modules\n", "node_modules", False),
        ("node_modules\n", "src", True),
        ("**\n!util/docker/web\n", "util", True),
        ("**\n!util/docker/web\n", "util/docker", True),
        ("**\n!util/docker/web\n", "other", False),
        ("build\n!build/keep/**\n", "build", True),
        ("build\n!build/keep/*\n", "build/other", False),
        ("build\n!*/keep.txt\n", "build", True),  # a wildcard exception may reach anywhere: walk it
        ("docs/*\n", "docs", True),  # "docs" itself is not excluded, only its children
        ("", "anything", True),
    ],
)
def test_may_descend(text: str, directory: str, expected: bool) -> None:
    assert parse_ignore_file(text).may_descend(directory) is expected


def test_load_prefers_the_dockerfile_specific_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("root-rule\n", encoding="utf-8")
    build = tmp_path / "build"
    build.mkdir()
    dockerfile = build / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\n", encoding="utf-8")
    assert load_ignore_rules(tmp_path, dockerfile).patterns == ("root-rule",)
    assert load_ignore_rules(tmp_path, None).patterns == ("root-rule",)
    (build / "app.Dockerfile.dockerignore").write_text("", encoding="utf-8")
    assert load_ignore_rules(tmp_path, dockerfile).patterns == ()  # present but empty still replaces the root file
    (build / "app.Dockerfile.dockerignore").write_text("specific\n", encoding="utf-8")
    assert load_ignore_rules(tmp_path, dockerfile).patterns == ("specific",)


def test_load_without_any_file(tmp_path: Path) -> None:
    rules = load_ignore_rules(tmp_path, tmp_path / "Dockerfile")
    assert rules.patterns == () and not rules
    assert not rules.excludes("x")


def test_load_reports_the_file_of_a_bad_pattern(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("ok\n[\n", encoding="utf-8")
    with pytest.raises(ContextError, match=r"\.dockerignore"):
        load_ignore_rules(tmp_path, None)


def test_rules_are_frozen_and_compare_by_patterns() -> None:
    rules = parse_ignore_file("a\n")
    assert rules == IgnoreRules(("a",))
    with pytest.raises(AttributeError):
        rules.patterns = ()  # type: ignore[misc]


def test_many_paths_match_quickly() -> None:
    rules = parse_ignore_file("**/node_modules\n*.pyc\n**/__pycache__\nbuild/**\n!build/keep\ndocs/*.md\n.git\n")
    paths = [f"pkg{i % 50}/sub{i % 7}/mod{i}.py" for i in range(20_000)]
    assert sum(rules.excludes(path) for path in paths) == 0
    assert rules.excludes("pkg1/node_modules/x/y.js")
