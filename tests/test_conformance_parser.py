"""The low-level parser against BuildKit's parser test data (../shared/conformance), plus unit tests of our own."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildkit_py.errors import DockerfileSyntaxError
from buildkit_py.frontend.parser import Heredoc, Node, dump, parse_dockerfile
from buildkit_py.gostring import go_quote

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"


def _case_dirs(group: str) -> list[Path]:
    folder = CONFORMANCE / group
    return sorted(path for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []


@pytest.mark.parametrize("case", _case_dirs("parser"), ids=lambda path: path.name)
def test_parser_case_dump(case: Path) -> None:
    parsed = parse_dockerfile((case / "Dockerfile").read_bytes())
    assert dump(parsed) == (case / "result").read_bytes().decode("utf-8")


@pytest.mark.parametrize("case", _case_dirs("parser-negative"), ids=lambda path: path.name)
def test_parser_negative_case(case: Path) -> None:
    with pytest.raises(DockerfileSyntaxError):
        parse_dockerfile((case / "Dockerfile").read_bytes())


def test_parser_line_numbers() -> None:
    parsed = parse_dockerfile((CONFORMANCE / "parser-line" / "Dockerfile").read_bytes())
    assert [(node.start_line, node.end_line) for node in parsed.nodes] == [(5, 5), (11, 12), (17, 31)]
    assert parsed.directives == {"escape": "\\"}
    assert len(parsed.warnings) == 1 and parsed.warnings[0].startswith("Empty continuation line found in: RUN apt-get")


def test_conformance_case_counts() -> None:
    assert CONFORMANCE.is_dir(), f"conformance data not found at {CONFORMANCE}"
    assert (len(_case_dirs("parser")), len(_case_dirs("parser-negative"))) == (33, 4)


# --- errors ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message", "instruction"),
    [
        ("", "file with no instructions", ""),
        ("# just\n\n# comments\n", "file with no instructions", ""),
        ("FROM a\nENV PATH\n", "ENV must have two arguments", "ENV"),
        ("FROM a\nLABEL a\n", "LABEL must have two arguments", "LABEL"),
        ("FROM a\nENV a=1 b\n", 'Syntax error - can\'t find = in "b". Must be of the form: name=value', "ENV"),
        ('CMD [ "echo", [ "nested json" ] ]', "arrays must be comprised of strings only", "CMD"),
        ("# escape=\\\n# escape=`\nFROM a\n", "only one escape parser directive can be used", ""),
        ("# escape=x\nFROM a\n", "invalid escape token 'x'", ""),
        ("FROM a\nRUN <<EOF\necho\n", "unterminated heredoc", ""),
    ],
)
def test_syntax_errors(source: str, message: str, instruction: str) -> None:
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse_dockerfile(source)
    assert message in caught.value.message
    assert caught.value.instruction == instruction


def test_error_carries_location_and_source_lines() -> None:
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse_dockerfile("FROM a\nENV \\\n  PATH\n", filename="sub/Dockerfile")
    location = caught.value.location
    assert location is not None
    assert (location.file, location.start_line, location.end_line) == ("sub/Dockerfile", 2, 3)
    assert location.text == "ENV \\\n  PATH"


def test_unknown_keyword_is_a_node_without_args() -> None:
    parsed = parse_dockerfile("FROM a\nFROBNICATE the thing\n")
    assert parsed.nodes[1] == Node("frobnicate", (), (), False, "FROBNICATE the thing", 2, 2)


# --- flags -----------------------------------------------------------------------------------------------------------


def test_flags_remove_quotes_and_escapes() -> None:
    node = parse_dockerfile('COPY --chown="a b":c --from=\'x y\' --x=\\"q src dst\n').nodes[0]
    assert node.flags == ("--chown=a b:c", "--from=x y", '--x="q')
    assert node.args == ("src", "dst")


def test_double_dash_ends_flags() -> None:
    node = parse_dockerfile("COPY --from=build -- --not-a-flag /dst\n").nodes[0]
    assert node.flags == ("--from=build",)
    assert node.args == ("--not-a-flag", "/dst")


def test_unknown_flags_are_kept_for_a_later_layer() -> None:
    node = parse_dockerfile("RUN --frobnicate=yes echo hi\n").nodes[0]
    assert node.flags == ("--frobnicate=yes",)
    assert node.args == ("echo hi",)


# --- argument forms --------------------------------------------------------------------------------------------------


def test_onbuild_child() -> None:
    node = parse_dockerfile('FROM a\nONBUILD RUN ["echo", "hi"]\n').nodes[1]
    assert node.keyword == "onbuild" and node.args == ()
    assert node.child == Node("run", ("echo", "hi"), (), True, 'RUN ["echo", "hi"]', 2, 2)
    assert dump(parse_dockerfile("ONBUILD RUN echo test")) == '(onbuild (run "echo test"))\n'


@pytest.mark.parametrize(
    ("source", "args", "json_form"),
    [
        ('RUN ["echo", "a b"]', ("echo", "a b"), True),
        ("RUN echo [1]", ("echo [1]",), False),
        ("RUN ['single']", ("['single']",), False),
        ("CMD []", (), True),
        ('ENTRYPOINT ["a", NaN]', ('["a", NaN]',), False),
        ('COPY ["a b", "c"]', ("a b", "c"), True),
        ("COPY [a b", ("[a", "b"), False),
        ('VOLUME ["/a", "/b"]', ("/a", "/b"), True),
        ('HEALTHCHECK --interval=5s CMD ["curl", "-f"]', ("CMD", "curl", "-f"), True),
        ("HEALTHCHECK NONE", ("NONE",), False),
        ('SHELL ["/bin/sh", "-c"]', ("/bin/sh", "-c"), True),
    ],
)
def test_json_form(source: str, args: tuple[str, ...], json_form: bool) -> None:
    node = parse_dockerfile(source).nodes[0]
    assert (node.args, node.json_form) == (args, json_form)


def test_env_forms_keep_quotes() -> None:
    legacy, modern = parse_dockerfile('ENV A b c\nENV X="1 2" Y=\\ z\n').nodes
    assert legacy.args == ("A", "b c", "")
    assert modern.args == ("X", '"1 2"', "=", "Y", "\\ z", "=")


# --- lines -----------------------------------------------------------------------------------------------------------


def test_multi_line_run_original_and_lines() -> None:
    source = "FROM a\n\nRUN echo one \\\n    # a comment\n\n  && echo two\nUSER me\n"
    parsed = parse_dockerfile(source)
    run = parsed.nodes[1]
    assert (run.start_line, run.end_line) == (3, 6)
    assert run.original == "RUN echo one   && echo two"
    assert run.args == ("echo one   && echo two",)
    assert (parsed.nodes[2].start_line, parsed.nodes[2].end_line) == (7, 7)
    assert parsed.warnings == ("Empty continuation line found in: RUN echo one   && echo two",)


def test_crlf_input() -> None:
    parsed = parse_dockerfile(b'FROM a\r\nRUN echo a \\\r\n  b\r\nCMD ["x"]\r\n')
    assert [node.args for node in parsed.nodes] == [("a",), ("echo a   b",), ("x",)]
    assert [node.end_line for node in parsed.nodes] == [1, 3, 4]


def test_escape_directive_with_backtick() -> None:
    parsed = parse_dockerfile(b"\xef\xbb\xbf# Syntax = docker/dockerfile:1\n# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\n")
    assert parsed.escape_token == "`"
    assert parsed.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert parsed.nodes[1].args == ("dir c:\\   /w",)
    assert (parsed.nodes[1].start_line, parsed.nodes[1].end_line) == (4, 5)


def test_directives_only_at_the_top() -> None:
    parsed = parse_dockerfile("# a comment\n# escape=`\nFROM a \\\n  b\n")
    assert parsed.escape_token == "\\" and parsed.directives == {}
    assert parsed.nodes[0].args == ("a", "b")


def test_escaped_escape_is_not_a_continuation() -> None:
    parsed = parse_dockerfile("RUN echo \\\\\nCMD x\n")
    assert [node.keyword for node in parsed.nodes] == ["run", "cmd"]


# --- heredocs (expectations from BuildKit's TestParseExtractsHeredoc) ------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("RUN <<EMPTY\nEMPTY\n", [Heredoc("EMPTY", "", True, False)]),
        ("RUN 3<<EMPTY2\nEMPTY2\n", [Heredoc("EMPTY2", "", True, False, 3)]),
        ('RUN "<<NOHEREDOC"\n', []),
        ("USER <<INVALID\n", []),
        ("RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n", [Heredoc("UNINDENT2", "\tbaz\n\tquux\n", True, True)]),
        ("RUN <<-'NOEXPAND'\n\tdon't $N\nNOEXPAND\n", [Heredoc("NOEXPAND", "\tdon't $N\n", False, True)]),
        ("RUN <<COMMENT\n# c\necho\nCOMMENT\n", [Heredoc("COMMENT", "# c\necho\n", True, False)]),
        ("COPY <<X <<Y /dest\nY\nX\nX\nY\n", [Heredoc("X", "Y\n", True, False), Heredoc("Y", "X\n", True, False)]),
        ("RUN <<eo'f'\necho foo\neof\n", [Heredoc("eof", "echo foo\n", False, False)]),
        ("RUN <<eo\\'f\necho foo\neo'f\n", [Heredoc("eo'f", "echo foo\n", True, False)]),
        ("RUN <<'e'o\\'f\necho foo\neo'f\n", [Heredoc("eo'f", "echo foo\n", False, False)]),
        ("RUN <<'one two'\necho bar\none two\n", [Heredoc("one two", "echo bar\n", False, False)]),
        ("RUN <<  EOF  > foo\nEOF\n", [Heredoc("EOF", "", True, False)]),
        ('RUN ["<<EOF"]\n', []),
    ],
)
def test_heredocs(source: str, expected: list[Heredoc]) -> None:
    node = parse_dockerfile("FROM a\n" + source + "USER after\n").nodes[1]
    assert list(node.heredocs) == expected
    assert node.end_line == len(source.splitlines()) + 1


# --- Go string quoting -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\t\n\x00\x7f", '"\\t\\n\\x00\\x7f"'),
        ("\u00a0\u2028é", '"\\u00a0\\u2028é"'),
        ("\U000e0001", '"\\U000e0001"'),
        (b"\xff".decode("utf-8", errors="surrogateescape"), '"\\xff"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted
