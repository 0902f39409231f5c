"""BuildKit's shell lexer vectors (shared/conformance/shell), run as README sections 4 and 5 describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildkit_py.errors import ExpansionError
from buildkit_py.frontend.shell import ShellLexer

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
ENV_VAR_TEST = CONFORMANCE / "shell" / "envVarTest"
WORDS_TEST = CONFORMANCE / "shell" / "wordsTest"

ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _lines(path: Path) -> list[str]:
    # newline="" keeps a stray "\r" inside a line, as Go's bufio.Scanner would (it only drops "\r\n" endings).
    with path.open(encoding="utf-8", newline="") as handle:
        return [line.removesuffix("\n").removesuffix("\r") for line in handle]


def _env_var_vectors() -> list[object]:
    if not ENV_VAR_TEST.is_file():
        return []  # an empty parameter set fails at collection (pyproject: empty_parameter_set_mark)
    vectors: list[object] = []
    for number, line in enumerate(_lines(ENV_VAR_TEST), start=1):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        parts = line.split("|")
        assert len(parts) == 3, f"envVarTest:{number}: {line!r}"
        platform, source, expected = (part.strip() for part in parts)
        assert platform in ("A", "U", "W"), f"envVarTest:{number}: platform {platform!r}"
        if platform == "W":
            continue
        vectors.append(pytest.param(source, expected, id=f"line{number}"))
    return vectors


def _words_vectors() -> list[object]:
    if not WORDS_TEST.is_file():
        return []
    vectors: list[object] = []
    envs: list[str] = []
    for number, line in enumerate(_lines(WORDS_TEST), start=1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            envs.append(line[3:].lstrip(" "))
            continue
        parts = line.split("|")
        assert len(parts) == 2, f"wordsTest:{number}: {line!r}"
        test = parts[0].strip()
        expected = parts[1].lstrip(" ").split(",")
        env = dict(entry.partition("=")[::2] for entry in envs)
        vectors.append(pytest.param(test, expected, env, id=f"line{number}"))
    return vectors


@pytest.mark.parametrize(("source", "expected"), _env_var_vectors())
def test_env_var_vector(source: str, expected: str) -> None:
    lexer = ShellLexer("\\")
    if expected == "error":
        with pytest.raises(ExpansionError):
            lexer.process_word(source, ENV_VAR_ENV)
    else:
        assert lexer.process_word(source, ENV_VAR_ENV) == expected


@pytest.mark.parametrize(("test", "expected", "env"), _words_vectors())
def test_words_vector(test: str, expected: list[str], env: dict[str, str]) -> None:
    try:
        result = ShellLexer("\\").process_words(test, env)
    except ExpansionError:
        result = ["error"]
    assert result == expected


def test_vector_counts() -> None:
    assert ENV_VAR_TEST.is_file() and WORDS_TEST.is_file(), f"conformance data not found at {CONFORMANCE}"
    assert len(_env_var_vectors()) == 228
    assert len(_words_vectors()) == 24


# BuildKit's Go tables in lex_test.go (TestProcessWithMatches, TestShellParserMandatoryEnvVars), transcribed:
# (input, env, expected result or None for an error, matched, unmatched). Unmatched is not checked on errors.
MATCH_CASES: list[tuple[str, dict[str, str], str | None, set[str], set[str]]] = [
    ("x", {"DUMMY": "dummy"}, "x", set(), set()),
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x ", set(), {"UNUSED"}),
    ("x ${FOO}", {"FOO": "y"}, "x y", {"FOO"}, set()),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:-}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${FOO:-}", {}, "", set(), {"FOO"}),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, "", {"BAR"}, set()),
    ("${BAZ?ccc}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${FOO:?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${BAR:?bbb}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${BAZ:?ccc}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${BAZ:?}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${FOO=aaa}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${FOO=:aaa}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${FOO=}", {}, None, set(), set()),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x", {"FOO"}, set()),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx", {"FOO"}, set()),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y", {"FOO"}, set()),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy", {"FOO", "BAR"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy", {"FOO"}, set()),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y", {"FOO"}, set()),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy.", {"FOO"}, {"ABC"}),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a", {"FOO"}, set()),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    ("${FOO:#}", {}, None, set(), set()),
    ("${FOO:##}", {}, None, set(), set()),
    ("${FOO:%}", {}, None, set(), set()),
    ("${FOO:%%}", {}, None, set(), set()),
    (
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
        "/foo.*/*.txt - /foo..*.txt",
        {"FOO", "NEEDLE"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
        "/tmp/bar.txt - /bar.txt",
        {"FOO", "NEEDLE"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
        "/foo/b/c.txt - /foo/c.txt",
        {"FOO", "NEEDLE", "REPLACEMENT"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT}",
        {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
        "https://google.de",
        {"FOO", "NEEDLE", "REPLACEMENT"},
        set(),
    ),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt", {"FOO"}, set()),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy", {"FOO", "BAR"}, set()),
    ("${FOO//ww}", {"FOO": "xxyy"}, None, set(), set()),
    ("${FOO//}", {"FOO": "xxyy"}, None, set(), set()),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO///}", {}, "", set(), {"FOO"}),
    (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
        {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
        "something-v1.2.3.linux-arm-v7.tar.gz",
        {"VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"},
        set(),
    ),
    (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
        {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm64"},
        "something-v1.2.3.linux-arm64.tar.gz",
        {"VERSION", "TARGETOS", "TARGETARCH"},
        {"TARGETVARIANT"},
    ),
]


@pytest.mark.parametrize(("word", "env", "expected", "matched", "unmatched"), MATCH_CASES)
def test_process_word_with_matches(
    word: str, env: dict[str, str], expected: str | None, matched: set[str], unmatched: set[str]
) -> None:
    lexer = ShellLexer()
    if expected is None:
        with pytest.raises(ExpansionError):
            lexer.process_word_with_matches(word, env)
        return
    assert lexer.process_word_with_matches(word, env) == (expected, frozenset(matched), frozenset(unmatched))


@pytest.mark.parametrize(
    ("word", "env", "message"),
    [
        ("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"}, "VAR: message herex"),
        ("${VAR:?message here$ARG}", {"ARG": "x"}, "VAR: message herex"),
        ("${VAR?message here$ARG}", {"ARG": "x"}, "VAR: message herex"),
        ("${VAR:?}", {}, "VAR: is not allowed to be unset"),
        ("${VAR?}", {}, "VAR: is not allowed to be unset"),
        ("${VAR:?}", {"VAR": ""}, "VAR: is not allowed to be empty"),
        ('a${VAR:?"quoted  text"}', {}, "VAR: quoted  text"),
    ],
)
def test_mandatory_variable_messages(word: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ExpansionError) as raised:
        ShellLexer().process_word(word, env)
    assert str(raised.value).endswith(f": {message}")
    assert str(raised.value).startswith("failed to process ")


@pytest.mark.parametrize(
    ("word", "env", "expected"),
    [
        ("${VAR:?message}", {"VAR": "plain"}, "plain"),
        ("${VAR?message}", {"VAR": ""}, ""),
    ],
)
def test_mandatory_variable_present(word: str, env: dict[str, str], expected: str) -> None:
    assert ShellLexer().process_word(word, env) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("${P#*/}", "b/c.tar.gz"),
        ("${P##*/}", "c.tar.gz"),
        ("${P%.*}", "a/b/c.tar"),
        ("${P%%.*}", "a/b/c"),
        ("${P%/*}", "a/b"),
        ("${P%%/*}", "a"),
        ("${P#a?b}", "/c.tar.gz"),
        ("${P#[a]}", "a/b/c.tar.gz"),  # like BuildKit, brackets are literal
        ("${P#x}", "a/b/c.tar.gz"),
        ("${UNSET#*}", ""),
        ("${P/b/X}", "a/X/c.tar.gz"),
        ("${P//\\//_}", "a_b_c.tar.gz"),
        ("${P/*./}", "gz"),
        ("${P/./$DD}", "a/b/c$$tar.gz"),  # replacing the first match uses the replacement as it is
        ("${P//a/$DD}", "$/b/c.t$r.gz"),  # Go's ReplaceAllString: "$$" in the template is one "$"
        ("${P//a/$M}", "aa/b/c.taar.gz"),  # ... and "$0" the match
        ("${D//x*/-}", "-"),
        ("${D//*/-}", "-"),  # an empty match right after a match is skipped, as in Go
        ('${P#"a/"}', "b/c.tar.gz"),
        ("${P##'*'}", ""),  # quotes are removed before the pattern is read: the star stays a wildcard
    ],
)
def test_pattern_modifiers(word: str, expected: str) -> None:
    assert ShellLexer().process_word(word, {"P": "a/b/c.tar.gz", "D": "xxa", "DD": "$$", "M": "$0$0"}) == expected


@pytest.mark.parametrize("word", ["${P#\\a}", "${P%\\}", "${P/\\x/y}", "${P//a}", "${P/a", "${P:%x}"])
def test_pattern_errors(word: str) -> None:
    with pytest.raises(ExpansionError):
        ShellLexer().process_word(word, {"P": "abc"})


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("C:\\path\\$NAME", "C:\\path\\value"),
        ("`$NAME", "$NAME"),
        ("a` b", "a b"),
        ('"`"x`""', '"x"'),
        ('"a`b"', "a`b"),
        ("trailing`", "trailing"),
        ("${UNSET:-`}}", "}"),
        ("${NAME#v`*}", "value"),
    ],
)
def test_backtick_escape(word: str, expected: str) -> None:
    assert ShellLexer("`").process_word(word, {"NAME": "value"}) == expected


def test_backtick_escape_words() -> None:
    assert ShellLexer("`").process_words("a` b c\\ d", {}) == ["a b", "c\\", "d"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   ", []),
        ('"" x', ["x"]),
        ("cat <<  EOF", ["cat", "<<  EOF"]),
        ("a\tb\nc", ["a", "b", "c"]),
        ("${V:-x y}z", ["x", "yz"]),
        ("pre${V:-x y}", ["prex", "y"]),  # BuildKit's shared buffer would drop "pre" here; we keep it
        ("'a b'\"c d\"", ["a bc d"]),
    ],
)
def test_process_words(text: str, expected: list[str]) -> None:
    assert ShellLexer().process_words(text, {}) == expected


def test_options_for_heredocs_and_display() -> None:
    env = {"SET": "v"}
    raw = ShellLexer(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    assert (
        raw.process_word("'a'\"$SET\\$\"\\x $UNSET ${UNSET:-d} ${UNSET}", env)
        == "'a'\"v\\$\"\\x $UNSET ${UNSET:-d} ${UNSET}"
    )
    assert ShellLexer(process_quotes=False).process_word("'$SET' \"$SET\"", env) == "'v' \"v\""


def test_fast_path_and_unicode_names() -> None:
    lexer = ShellLexer()
    assert lexer.process_word_with_matches("plain text", {}) == ("plain text", frozenset(), frozenset())
    assert lexer.process_word("$한국어!", {"한국어": "ko"}) == "ko!"
    assert lexer.process_word("$A²", {"A": "x"}) == "x²"  # "²" is not a Go digit: the name ends before it
    assert lexer.process_word("$10x", {"10": "ten"}) == "tenx"


def test_escape_token_must_be_one_character() -> None:
    with pytest.raises(ValueError):
        ShellLexer("ab")
