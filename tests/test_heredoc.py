"""Heredocs in RUN, COPY and ADD, with the cases and expectations of BuildKit's own tests
(frontend/dockerfile/parser/parser_heredoc_test.go, frontend/dockerfile/dockerfile_heredoc_test.go)."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import BASE_IMAGE

from buildkit_py.builder import build
from buildkit_py.errors import BuildError, DockerfileSyntaxError, InstructionError
from buildkit_py.frontend.convert import parse_stages
from buildkit_py.frontend.instructions import Copy, InlineFile, Run
from buildkit_py.frontend.parser import chomp_heredoc, parse_dockerfile, parse_heredoc_word
from buildkit_py.image.stored import image_config
from buildkit_py.store import Store

# --- parsing ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["<<EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<-'EOF'", '<<-"EOF"', '<<EO"F"', "<< EOF"])
def test_heredoc_words(word: str) -> None:
    heredoc = parse_heredoc_word(word)
    assert heredoc is not None and heredoc.name == "EOF"


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"])
def test_not_heredoc_words(word: str) -> None:
    assert parse_heredoc_word(word) is None


def test_chomp_strips_leading_tabs_only() -> None:
    assert chomp_heredoc("\thello\n\t\tworld\n  x\n") == "hello\nworld\n  x\n"


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("RUN <<EOF", ["EOF"]),
        ("RUN <<-EOF", ["EOF"]),
        (
            "RUN <<- EOF",
            [],
        ),  # the line's lexer splits "<<-" from "EOF" (BuildKit's loop over no heredocs checks nothing)
        ("RUN << -EOF", ["-EOF"]),
        ("RUN <<'EOF'", ["EOF"]),
        ("RUN 4<<EOF", ["EOF"]),
        ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]),
        ("RUN '<<EOF'", []),
        ('RUN "<<EOF"', []),
        ('RUN ["<<EOF"]', []),
    ],
)
def test_heredocs_of_a_line(line: str, names: list[str]) -> None:
    body = "".join(f"x\n{name}\n" for name in names)
    parsed = parse_dockerfile(f"FROM a\n{line}\n{body}")
    assert [doc.name for doc in parsed.nodes[1].heredocs] == names


def test_unterminated_heredoc_names_its_lines() -> None:
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse_dockerfile("FROM a\nRUN true\nRUN <<EOF\necho hi\n")
    assert caught.value.message == "unterminated heredoc"
    assert caught.value.location is not None
    assert (caught.value.location.start_line, caught.value.location.end_line) == (3, 4)
    assert str(caught.value).startswith("Dockerfile:3: unterminated heredoc")


def _instructions(text: str) -> list[object]:
    _, stages = parse_stages(parse_dockerfile(text))
    return list(stages[0].commands)


def test_instructions_carry_heredocs() -> None:
    run, copy = _instructions("FROM a\nRUN <<-EOF\n\techo hi\nEOF\nCOPY <<-'A' b.txt <<B /dest/\n\tone $x\nA\ntwo\nB\n")
    assert isinstance(run, Run) and run.heredocs == (InlineFile("EOF", "\techo hi\n", chomp=True, expand=True),)
    assert isinstance(copy, Copy)
    assert copy.sources == ("b.txt",) and copy.dest == "/dest/"
    assert copy.inline_sources == (InlineFile("A", "one $x\n", True, False), InlineFile("B", "two\n", False, True))


@pytest.mark.parametrize("keyword", ["COPY", "ADD"])
def test_heredoc_as_destination_is_refused(keyword: str) -> None:
    with pytest.raises(InstructionError) as caught:
        _instructions(f"FROM a\n{keyword} file <<EOF\nx\nEOF\n")
    assert caught.value.message == f"{keyword} cannot accept a heredoc as a destination"
    assert str(caught.value).startswith(f"Dockerfile:2: {keyword}: ")


# --- building --------------------------------------------------------------------------------------------------------


def image_files(store: object, name: str) -> dict[str, bytes]:
    """Regular files of an image's layers, later layers winning (enough for these images, which delete nothing)."""
    config = image_config(store, store.resolve(name))  # type: ignore[arg-type, attr-defined]
    files: dict[str, bytes] = {}
    for diff_id in config.diff_ids:
        with store.layers.open(diff_id) as stream:  # type: ignore[attr-defined]
            data = stream.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive:
                if member.isreg():
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    files["/" + member.name.removeprefix("./")] = extracted.read()
    return files


def _build(store: object, folder: Path, dockerfile: str, tag: str) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(dockerfile)
    build(folder, tags=[tag], network="none", store=store)  # type: ignore[arg-type]
    return image_files(store, tag)


def test_copy_heredoc(base_store: object, tmp_path: Path) -> None:
    files = _build(
        base_store,
        tmp_path,
        f"FROM {BASE_IMAGE} AS build\n"
        "WORKDIR /dest\n"
        "COPY <<EOF single\nsingle file\nEOF\n"
        "COPY <<EOF <<EOF2 double/\nfirst file\nEOF\nsecond file\nEOF2\n"
        "RUN echo 'user:x:1000:1000::/:/bin/sh' >> /etc/passwd && echo 'user:x:1000:' >> /etc/group\n"
        "COPY --chown=user:user <<EOF /permfiles/owned\ndummy content\nEOF\n"
        "RUN stat -c '%04a' /dest/single > perms && stat -c '%U:%G' /permfiles/owned >> perms\n"
        "FROM scratch\n"
        "COPY --from=build /dest /\n",
        "test/heredoc-copy:1",
    )
    assert files == {
        "/single": b"single file\n",
        "/double/EOF": b"first file\n",
        "/double/EOF2": b"second file\n",
        "/perms": b"0644\nuser:user\n",
    }


def test_copy_heredoc_special_symbols(base_store: object, tmp_path: Path) -> None:
    files = _build(
        base_store,
        tmp_path,
        "FROM scratch\n"
        'COPY <<EOF quotefile\n"quotes in file"\nEOF\n'
        "COPY <<EOF slashfile1\n\\\nEOF\n"
        "COPY <<EOF slashfile2\n\\\\\nEOF\n"
        "COPY <<EOF slashfile3\n\\$\nEOF\n"
        'COPY <<"EOF" rawslashfile1\n\\\nEOF\n'
        'COPY <<"EOF" rawslashfile2\n\\\\\nEOF\n'
        'COPY <<"EOF" rawslashfile3\n\\$\nEOF\n',
        "test/heredoc-symbols:1",
    )
    assert files == {
        "/quotefile": b'"quotes in file"\n',
        "/slashfile1": b"\n",
        "/slashfile2": b"\\\n",
        "/slashfile3": b"$\n",
        "/rawslashfile1": b"\\\n",
        "/rawslashfile2": b"\\\\\n",
        "/rawslashfile3": b"\\$\n",
    }


def test_run_heredocs(base_store: object, tmp_path: Path) -> None:
    """Basic, shebang (with <<-), complex (pipes, several heredocs, file descriptors), fake (SHELL awk)."""
    files = _build(
        base_store,
        tmp_path,
        f"FROM {BASE_IMAGE} AS build\n"
        "WORKDIR /dest\n"
        'RUN <<EOF\necho "i am" >> /dest/basic\nid -u >> /dest/basic\nEOF\n'
        'RUN <<EOF\n#!/bin/awk -f\nBEGIN {\n\tprint "hello" >> "./out1"\n\tprint "world" >> "./out1"\n}\nEOF\n'
        'RUN <<-EOF\n\t#!/bin/awk -f\n\tBEGIN {\n\t\tprint "hello" >> "./out2"\n\t\tprint "world" >> "./out2"\n\t}\nEOF\n'
        "RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./cplx1; \\\n"
        "\tcat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./cplx2\n"
        "hello WORLD\nEOF1\nHELLO world\nEOF2\n"
        "RUN <<EOF 3<<IN1 4<<IN2 awk -f -\n"
        'BEGIN {\n\twhile ((getline line < "/proc/self/fd/3") > 0)\n\t\tprint tolower(line) > "./fd3"\n'
        '\twhile ((getline line < "/proc/self/fd/4") > 0)\n\t\tprint toupper(line) > "./fd4"\n}\n'
        "EOF\nhello WORLD\nIN1\nHELLO world\nIN2\n"
        'RUN <<EOF\n#!/bin/sh\necho "$0" > ./script-path\nEOF\n'
        'SHELL ["/bin/awk"]\n'
        'RUN <<EOF\nBEGIN {\n\tprint "foo" > "/dest/fake"\n}\nEOF\n'
        "FROM scratch\n"
        "COPY --from=build /dest /\n",
        "test/heredoc-run:1",
    )
    assert files == {
        "/basic": b"i am\n0\n",
        "/out1": b"hello\nworld\n",
        "/out2": b"hello\nworld\n",
        "/cplx1": b"hello world\n",
        "/cplx2": b"HELLO WORLD\n",
        "/fd3": b"hello world\n",
        "/fd4": b"HELLO WORLD\n",
        "/script-path": b"/dev/pipes/EOF\n",
        "/fake": b"foo\n",
    }


def test_shebang_script_stays_out_of_the_layer(base_store: object, tmp_path: Path) -> None:
    _build(base_store, tmp_path, f"FROM {BASE_IMAGE}\nRUN <<EOF\n#!/bin/sh\ntouch /made\nEOF\n", "test/heredoc-pipes:1")
    from helpers import pybuild_tree

    tree = pybuild_tree(base_store, "test/heredoc-pipes:1")
    assert "/made" in tree
    assert not any(path == "/dev" or path.startswith("/dev/") for path in tree)


def test_heredoc_indent(base_store: object, tmp_path: Path) -> None:
    files = _build(
        base_store,
        tmp_path,
        f"FROM {BASE_IMAGE} AS build\n"
        "COPY <<EOF /dest/foo-copy\n\tfoo\nEOF\n"
        "COPY <<-EOF /dest/bar-copy\n\tbar\nEOF\n"
        'RUN <<EOF\necho "\n\tfoo" > /dest/foo-run\nEOF\n'
        'RUN <<-EOF\necho "\n\tbar" > /dest/bar-run\nEOF\n'
        'RUN <<EOF\n#!/bin/sh\necho "\n\tfoo" > /dest/foo2-run\nEOF\n'
        'RUN <<-EOF\n#!/bin/sh\necho "\n\tbar" > /dest/bar2-run\nEOF\n'
        'RUN <<EOF sh > /dest/foo3-run\necho "\n\tfoo"\nEOF\n'
        'RUN <<-EOF sh > /dest/bar3-run\necho "\n\tbar"\nEOF\n'
        "FROM scratch\n"
        "COPY --from=build /dest /\n",
        "test/heredoc-indent:1",
    )
    assert files == {
        "/foo-copy": b"\tfoo\n",
        "/foo-run": b"\n\tfoo\n",
        "/foo2-run": b"\n\tfoo\n",
        "/foo3-run": b"\n\tfoo\n",
        "/bar-copy": b"bar\n",
        "/bar-run": b"\nbar\n",
        "/bar2-run": b"\nbar\n",
        "/bar3-run": b"\nbar\n",
    }


def test_heredoc_variable_substitution(base_store: object, tmp_path: Path) -> None:
    copies = {
        "c1": ("EOF", "Hello ${name}!"),
        "c2": ("'EOF'", "Hello ${name}!"),
        "c3": ('"EOF"', "Hello ${name}!"),
        "q1": ("EOF", "Hello '${name}'!"),
        "q2": ("EOF", 'Hello "${name}"!'),
        "qsingle1": ("'EOF'", "Hello '${name}'!"),
        "qsingle2": ("'EOF'", 'Hello "${name}"!'),
        "qdouble1": ('"EOF"', "Hello '${name}'!"),
        "qdouble2": ('"EOF"', 'Hello "${name}"!'),
    }
    lines = "".join(f"COPY <<{word} /dest/{name}\n{body}\nEOF\n" for name, (word, body) in copies.items())
    files = _build(
        base_store,
        tmp_path,
        f"FROM {BASE_IMAGE} as build\nARG name=world\n{lines}"
        'RUN <<EOF\ngreeting="Hello"\necho "${greeting} ${name}!" > /dest/r1\nEOF\n'
        'RUN <<EOF\nname="new world"\necho "Hello ${name}!" > /dest/r2\nEOF\n'
        "FROM scratch\nCOPY --from=build /dest /\n",
        "test/heredoc-vars:1",
    )
    assert files == {
        "/c1": b"Hello world!\n",
        "/c2": b"Hello ${name}!\n",
        "/c3": b"Hello ${name}!\n",
        "/q1": b"Hello 'world'!\n",
        "/q2": b'Hello "world"!\n',
        "/qsingle1": b"Hello '${name}'!\n",
        "/qsingle2": b'Hello "${name}"!\n',
        "/qdouble1": b"Hello '${name}'!\n",
        "/qdouble2": b'Hello "${name}"!\n',
        "/r1": b"Hello world!\n",
        "/r2": b"Hello new world!\n",
    }


def test_onbuild_heredoc(base_store: object, tmp_path: Path) -> None:
    _build(
        base_store,
        tmp_path / "base",
        f'FROM {BASE_IMAGE}\nONBUILD RUN <<EOF\necho "hello world" >> /dest\nEOF\n',
        "test/heredoc-onbuild-base:1",
    )
    files = _build(
        base_store,
        tmp_path / "child",
        "FROM test/heredoc-onbuild-base:1 AS base\nFROM scratch\nCOPY --from=base /dest /dest\n",
        "test/heredoc-onbuild:1",
    )
    assert files == {"/dest": b"hello world\n"}


def test_add_heredoc_and_cache(base_store: object, tmp_path: Path) -> None:
    """ADD writes a heredoc like COPY (nothing to unpack); the body is part of the step's cache key."""
    dockerfile = "FROM scratch\nADD <<EOF /greeting\nhello\nEOF\n"
    assert _build(base_store, tmp_path, dockerfile, "test/heredoc-add:1") == {"/greeting": b"hello\n"}
    (tmp_path / "Dockerfile").write_text(dockerfile)
    again = build(tmp_path, network="none", store=base_store)  # type: ignore[arg-type]
    assert again.stats.executed == set()
    changed = _build(base_store, tmp_path, dockerfile.replace("hello", "bye"), "test/heredoc-add:2")
    assert changed == {"/greeting": b"bye\n"}


def test_copy_heredoc_with_chmod_makes_an_executable_script(base_store: object, tmp_path: Path) -> None:
    """`COPY --chmod=755 <<EOF /usr/local/bin/x`: the file has mode 0755 and the heredoc's body, and a later RUN can
    execute it by name."""
    body = "#!/bin/sh\necho script ran\n"  # nothing to expand: an unquoted heredoc expands build variables
    tag = f"test/heredoc-chmod:{tmp_path.name.lower()}"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY --chmod=755 <<EOF /usr/local/bin/x\n{body}EOF\nRUN x > /ran\n"
    )
    assert isinstance(base_store, Store)
    build(tmp_path, tags=[tag], network="none", store=base_store)
    members: dict[str, tuple[int, bytes]] = {}
    for diff_id in image_config(base_store, base_store.resolve(tag)).diff_ids:
        with base_store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if member.isreg():
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    members["/" + member.name.removeprefix("./")] = (member.mode, extracted.read())
    mode, content = members["/usr/local/bin/x"]
    assert (oct(stat.S_IMODE(mode)), content) == (oct(0o755), body.encode())
    assert members["/ran"][1] == b"script ran\n"


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM scratch\nCOPY <<EOF <<EOF2 /dest\na\nEOF\nb\nEOF2\n", "the destination must be a directory"),
        ("FROM scratch\nCOPY <<.. /dest\na\n..\n", "heredoc name '..' cannot be used as a file name"),
        ("FROM scratch\nCOPY <<EOF /x\n${a:?is required}\nEOF\n", "a: is required"),
    ],
)
def test_bad_heredoc_copy(base_store: object, tmp_path: Path, dockerfile: str, message: str) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    with pytest.raises(BuildError) as caught:
        build(tmp_path, store=base_store)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert str(caught.value).startswith("Dockerfile:2: COPY: ")


def test_cli_unterminated_heredoc(base_store: object, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY <<EOF /x\nnever ends\n")
    root = base_store.root  # type: ignore[attr-defined]
    result = subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "build", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Dockerfile:2: unterminated heredoc" in result.stderr
    assert "Traceback" not in result.stderr
