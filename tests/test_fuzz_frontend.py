"""Property-based fuzzing of the Dockerfile frontend, which reads hostile text: the parser, word expansion, and the
whole path text -> instructions -> ops plan. Whatever the text, the only exceptions are the project's errors.

Dockerfiles are drawn from a grammar-ish strategy (instructions, flags, quotes, escapes, heredocs, continuations,
nested `${...}` forms, unicode) and then mutated at the byte level (invalid UTF-8 included). `scripts/fuzz.sh` runs
the same properties with many more examples."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import event, given
from hypothesis import strategies as st

from buildkit_py.digest import Digest, digest_bytes
from buildkit_py.errors import BuildError, ImageNotFound
from buildkit_py.frontend.dockerfile2ops import dockerfile_to_plan
from buildkit_py.frontend.parser import dump, parse_dockerfile
from buildkit_py.frontend.plan import ResolvedImage
from buildkit_py.frontend.shell import ShellLexer
from buildkit_py.image.config import ContainerConfig, HistoryEntry, ImageConfig
from buildkit_py.solver.ops import ContextSource

KEYWORDS = (
    "FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "LABEL", "EXPOSE", "VOLUME", "USER", "WORKDIR",
    "SHELL", "HEALTHCHECK", "STOPSIGNAL", "ONBUILD", "MAINTAINER",
)  # fmt: skip
FLAGS = (
    "--from", "--chown", "--chmod", "--platform", "--network", "--mount", "--security", "--link", "--interval",
    "--timeout", "--start-period", "--retries", "--keep-git-dir", "--checksum", "--x", "-",
)  # fmt: skip
# Pieces with a meaning somewhere in the frontend, and characters that are hard to get right.
SPECIAL = (
    "\\", "`", "'", '"', "$", "${", "}", "{", ":-", ":+", ":?", "-", "+", "?", "#", "##", "%", "%%", "/", "//", ":",
    "=", "<<", "<<-", "<<EOF", "<<'EOF'", '<<"EOF"', "EOF", "[", "]", ",", " ", "\t", "\r", "\f", "\v", "AS", "as",
    "scratch", "base", "0", "-1", "99999999999999999999", "0x10", "1s", "1.5m", "SIGKILL", "RTMIN+3", "none", "host",
    "root:root", "1000:1000", "/", "..", ".", "*", "**", "?", "~", "\x00", "\u00e9", "\u2028", "\u00a0", "\ufeff",
    "\U0001f600", "\udcff", "&&", "|", ";",
)  # fmt: skip
NAMES = ("A", "B", "PATH", "HOME", "_x", "a1", "HTTP_PROXY", "", "1", "-")

names = st.sampled_from(NAMES)
plain_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


def _variable(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`$NAME`, `${NAME}` and `${NAME<op>word}` with the word drawn from inner (so the forms nest)."""
    operators = st.sampled_from((":-", "-", ":+", "+", ":?", "?", "#", "##", "%", "%%", "/", "//", ":", ""))
    return st.one_of(
        st.builds(lambda name: f"${name}", names),
        st.builds(lambda name: f"${{{name}}}", names),
        st.builds(
            lambda name, op, word, close: f"${{{name}{op}{word}{close}",
            names,
            operators,
            inner,
            st.sampled_from(("}", "", "}}")),
        ),
        st.builds(lambda name, a, b: f"${{{name}/{a}/{b}}}", names, inner, inner),
    )


words = st.recursive(
    st.one_of(st.sampled_from(SPECIAL), plain_text),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=5).map("".join),
        _variable(inner),
        inner.map(lambda word: f'"{word}"'),
        inner.map(lambda word: f"'{word}'"),
    ),
    max_leaves=12,
)


def _json_array(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


arguments = st.one_of(
    st.lists(words, max_size=6).map(" ".join),
    st.lists(words, max_size=4).map(_json_array),
    st.lists(st.tuples(names, words), max_size=4).map(lambda pairs: " ".join(f"{k}={v}" for k, v in pairs)),
)
flags = st.lists(st.tuples(st.sampled_from(FLAGS), st.one_of(st.none(), words)), max_size=3).map(
    lambda pairs: [flag if value is None else f"{flag}={value}" for flag, value in pairs]
)


@st.composite
def instruction(draw: st.DrawFn) -> list[str]:
    keyword = draw(st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(KEYWORDS).map(str.lower), words))
    parts = [keyword, *draw(flags), draw(arguments)]
    if keyword.upper() == "ONBUILD":
        parts.insert(1, draw(st.sampled_from(KEYWORDS)))
    separator = draw(st.sampled_from((" ", "  ", "\t", " \\\n  ", "\\\n", " `\n", "\\\n# comment\n", "\\\n\n")))
    lines = [separator.join(parts)]
    if draw(st.booleans()):  # a heredoc body, terminated or not
        lines.extend(draw(st.lists(words, max_size=3)))
        lines.append(draw(st.sampled_from(("EOF", "\tEOF", "END", ""))))
    return lines


line_strategies = st.one_of(
    instruction(),
    st.sampled_from(
        ("# escape=`", "# escape=\\", "# escape=x", "# syntax=docker/dockerfile:1", "# check=skip=all")
    ).map(lambda line: [line]),
    words.map(lambda word: [f"# {word}"]),
    st.just([""]),
)


@st.composite
def dockerfiles(draw: st.DrawFn) -> bytes:
    """A Dockerfile, most often starting FROM an image the resolver knows, then mutated at the byte level."""
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append(f"FROM {draw(st.sampled_from(('scratch', 'base', 'base AS one', '$B', 'nope')))}")
    for group in draw(st.lists(line_strategies, max_size=10)):
        lines.extend(group)
    text = draw(st.sampled_from(("\n", "\r\n"))).join(lines).encode("utf-8", "surrogateescape")
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:position] + draw(st.binary(max_size=4)) + text[position + cut :]
    return text


BASE_CONFIG = ContainerConfig(env=("PATH=/bin",), cmd=("sh",), working_dir="/w", user="app", on_build=("RUN x",))


def resolve_image(ref: str) -> ResolvedImage:
    """`base` exists (with an ONBUILD trigger); everything else is unknown, as the store would answer."""
    if ref != "base":
        raise ImageNotFound(f"no such image: {ref}")
    config = ImageConfig(
        config=BASE_CONFIG,
        diff_ids=(Digest("sha256", "a" * 64),),
        history=(HistoryEntry(created="2024-01-01T00:00:00Z", created_by="base layer"),),
    )
    return ResolvedImage(ref=ref, image_id=digest_bytes(ref.encode(), "sha256"), config=config)


CONTEXT = ContextSource(name="context", path="/src", exclude=())
build_args = st.dictionaries(st.sampled_from(NAMES[:6]), words, max_size=3)


@given(dockerfiles())
def test_parser_raises_only_project_errors(text: bytes) -> None:
    try:
        parsed = parse_dockerfile(text)
    except BuildError as error:
        event(f"refused: {type(error).__name__}")
        return
    event("parsed")
    dump(parsed)


@given(dockerfiles(), build_args, st.one_of(st.none(), st.sampled_from(("one", "0", "nope", ""))), st.booleans())
def test_text_to_plan_raises_only_project_errors(
    text: bytes, args: Mapping[str, str], target: str | None, no_network: bool
) -> None:
    try:
        parsed = parse_dockerfile(text)
        result = dockerfile_to_plan(
            parsed,
            context=CONTEXT,
            build_args=args,
            target=target,
            resolve_image=resolve_image,
            network="none" if no_network else "host",
        )
    except BuildError as error:
        event(f"refused: {type(error).__name__}")
        return
    event("planned")
    for digest in result.graph.topological():  # every op serialises and hashes
        result.graph.op(digest)


envs = st.dictionaries(names, words, max_size=4)


@given(words, envs, st.sampled_from(("\\", "`")), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_word_expansion_raises_only_expansion_errors(
    word: str,
    env: Mapping[str, str],
    escape: str,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset: bool,
    process_quotes: bool,
) -> None:
    lexer = ShellLexer(
        escape,
        raw_quotes=raw_quotes,
        raw_escapes=raw_escapes,
        skip_unset_env=skip_unset,
        process_quotes=process_quotes,
    )
    for expand in (lexer.process_word, lexer.process_words):
        try:
            expand(word, env)
        except BuildError:
            pass
