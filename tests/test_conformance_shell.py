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
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{ENV_VAR_TEST} is absent"))]
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
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason=f"{WORDS_TEST} is absent"))]
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
    if not (ENV_VAR_TEST.is_file() and WORDS_TEST.is_file()):
        pytest.skip("conformance data is absent")
    assert len(_env_var_vectors()) == 228
    assert len(_words_vectors()) == 24
