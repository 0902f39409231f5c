"""BuildKit's COPY/ADD flags, built with the real executor on the busybox base: --chmod, --parents, --exclude and
--link. The cases and assertions come from BuildKit's own tests (frontend/dockerfile/dockerfile_copy_test.go,
dockerfile_parents_test.go, exclude_patterns_test.go, dockerfile_add_test.go), read back from the image's layers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, pybuild_tree

from buildkit_py.builder import build
from buildkit_py.errors import InstructionError, StepError
from buildkit_py.image.stored import image_config
from buildkit_py.solver.ops import FileOp, MergeOp


def write(folder: Path, files: dict[str, str], modes: dict[str, int] | None = None) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for name, mode in (modes or {}).items():
        os.chmod(folder / name, mode)
    return folder


def test_chmod_octal_applies_to_files_and_the_parents_it_creates(base_store: object, tmp_path: Path) -> None:
    """testCopyChmod."""
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                "COPY --chmod=0644 foo /\n"
                "COPY --chmod=777 bar /baz\n"
                "COPY --chmod=0 foo /foobis\n"
                "COPY --chmod=777 foo /parent/foo\n"
                "COPY --chmod=770 foo /parent/sub/foo\n"
                "ARG mode\n"
                "COPY --chmod=${mode} foo /footer\n"
            ),
            "foo": "foo-contents",
            "bar": "bar-contents",
        },
        {"foo": 0o600, "bar": 0o700},
    )
    result = build(context, tags=["test/chmod"], build_args={"mode": "755"}, store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/chmod")
    modes = {
        path: stat.S_IMODE(tree[path].mode) for path in ("/foo", "/baz", "/foobis", "/parent", "/parent/sub", "/footer")
    }
    assert modes == {
        "/foo": 0o644,
        "/baz": 0o777,
        "/foobis": 0o000,
        "/parent": 0o777,
        "/parent/sub": 0o770,
        "/footer": 0o755,
    }
    history = [entry.created_by for entry in result.config.history if "foobis" in entry.created_by]
    assert history == ["COPY --chmod=0 foo /foobis # buildkit"]


def test_chmod_comes_after_chown_and_keeps_set_id_bits(base_store: object, tmp_path: Path) -> None:
    """fsutil chowns, then chmods: an explicit mode keeps its setuid bit (the kernel drops it on a later chown)."""
    context = write(tmp_path, {"Dockerfile": "FROM scratch\nCOPY --chown=1:2 --chmod=4755 f /suid\n", "f": "x"})
    build(context, tags=["test/chmod-suid"], store=base_store)  # type: ignore[arg-type]
    entry = pybuild_tree(base_store, "test/chmod-suid")["/suid"]
    assert (stat.S_IMODE(entry.mode), entry.uid, entry.gid) == (0o4755, 1, 2)


def test_chmod_symbolic_matches_chmod_in_the_container(base_store: object, tmp_path: Path) -> None:
    """testChmodNonOctal: each copy is compared with `cp -a` and busybox's chmod of the same input."""
    cases = [
        ("file", "f1", "go-w", False),
        ("file", "f2", "u=rw,g=r,o=r", False),
        ("file", "f3", "a+X", False),
        ("dir", "d1", "go-w", True),
        ("dir", "d2", "u+rw,g+r,o-x,o+w", True),
        ("dir", "d3", "a+X", True),
    ]
    expected_runs = []
    copies = []
    for src, dst, mode, is_dir in cases:
        if is_dir:
            expected_runs.append(f"RUN mkdir -p /input/dirs/{dst} && cp -a /input/{src} /input/dirs/{dst}/{dst}")
            expected_runs.append(f"RUN cp -a /input/dirs/{dst}/. /expected/ && chmod {mode} /expected/{dst}")
            copies.append(f"COPY --from=base --chmod={mode} /input/dirs/{dst} /")
        else:
            expected_runs.append(f"RUN cp -a /input/{src} /expected/{dst} && chmod {mode} /expected/{dst}")
            copies.append(f"COPY --from=base --chmod={mode} /input/{src} /{dst}")
    dockerfile = (
        f"FROM {BASE_IMAGE} AS base\n"
        "RUN mkdir /input && touch /input/file && chmod 666 /input/file && mkdir /input/dir && chmod 124 /input/dir"
        " && mkdir /expected\n" + "\n".join(expected_runs) + "\nFROM scratch AS result\n" + "\n".join(copies) + "\n"
    )
    context = write(tmp_path, {"Dockerfile": dockerfile})
    build(context, tags=["test/chmod-symbolic-expected"], target="base", store=base_store)  # type: ignore[arg-type]
    build(context, tags=["test/chmod-symbolic"], store=base_store)  # type: ignore[arg-type]
    expected = pybuild_tree(base_store, "test/chmod-symbolic-expected")
    actual = pybuild_tree(base_store, "test/chmod-symbolic")
    for _, dst, mode, _ in cases:
        assert oct(stat.S_IMODE(actual[f"/{dst}"].mode)) == oct(stat.S_IMODE(expected[f"/expected/{dst}"].mode)), mode


def test_a_bad_chmod_is_refused_with_its_line(base_store: object, tmp_path: Path) -> None:
    """testCopyInvalidChmod and testAddInvalidChmod, and a symbolic mode that does not parse."""
    for instruction in ("COPY", "ADD"):
        for mode in ("64a", "10000"):
            write(tmp_path, {"Dockerfile": f"FROM scratch\n{instruction} --chmod={mode} foo /\n", "foo": "x"})
            with pytest.raises(InstructionError) as caught:
                build(tmp_path, store=base_store)  # type: ignore[arg-type]
            assert caught.value.message == (
                f"invalid chmod parameter: '{mode}'. it should be octal string and between 0 and 07777"
            )
            assert str(caught.value).startswith(f"Dockerfile:2: {instruction}: ")
    write(tmp_path, {"Dockerfile": "FROM scratch\nCOPY --chmod=u+q foo /\n"})
    result = subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(base_store.root), "build", str(tmp_path)],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Dockerfile:2: COPY: invalid chmod parameter: 'u+q'" in result.stderr
    assert "Traceback" not in result.stderr


def test_copy_parents(base_store: object, tmp_path: Path) -> None:
    """testCopyParents."""
    context = write(
        tmp_path,
        {
            "Dockerfile": "FROM scratch\nCOPY --parents foo1/foo2/bar /\nWORKDIR /test\nCOPY --parents foo1/foo2/ba* .\n",
            "foo1/foo2/bar": "testing",
            "foo1/foo2/baz": "testing2",
        },
        {"foo1": 0o700, "foo1/foo2": 0o700},
    )
    result = build(context, tags=["test/parents"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/parents")
    assert tree["/foo1/foo2/bar"].size == len("testing")
    assert tree["/test/foo1/foo2/bar"].size == len("testing")
    assert tree["/test/foo1/foo2/baz"].size == len("testing2")
    assert stat.S_IMODE(tree["/foo1"].mode) == 0o700  # the parents keep their own metadata
    assert stat.S_IMODE(tree["/test/foo1/foo2"].mode) == 0o700
    assert "/foo1/foo2/baz" not in tree
    assert any(entry.created_by.startswith("COPY --parents foo1/foo2/bar / ") for entry in result.config.history)


RELATIVE_PARENTS = f"""
FROM {BASE_IMAGE} AS base
WORKDIR /test
RUN mkdir -p a/b/c/d/e a/b2/c/d/e a/b/c2/d/e a/b/c2/d/e2 && touch a/b/c/d/foo a/b/c/d/e/bay a/b2/c/d/e/bar \\
    a/b/c2/d/e/baz a/b/c2/d/e2/baz
FROM scratch AS middle
COPY --from=base --parents /test/a/b/./c/d /out/
FROM scratch AS end
COPY --from=base --parents /test/a/b/c/d/. /out/
FROM scratch AS start
COPY --from=base --parents ./test/a/b/c/d /out/
FROM scratch AS double
COPY --from=base --parents /test/a/./b/./c /out/
FROM scratch AS wildcard
COPY --from=base --parents /test/a/./*/c /out/
FROM scratch AS doublewildcard
COPY --from=base --parents /test/a/b*/./c/**/e /out/
FROM scratch AS doubleinputs
COPY --from=base --parents /test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar /out/
FROM {BASE_IMAGE} AS base-missing
WORKDIR /test
RUN mkdir -p a/b/c/d/e && touch a/b/c/d/foo a/b/c/d/e/bay
FROM scratch AS normal
COPY --from=base-missing --parents /test/a/b/c/d /out/
FROM scratch AS withpivot
COPY --from=base-missing --parents /test/a/b/./c/d /out/
FROM scratch AS wildcard-nonexistent
COPY --from=base-missing --parents /test/a/b2*/c /out/
FROM scratch AS wildcard-afterpivot
COPY --from=base-missing --parents /test/a/b/./c2* /out/
FROM scratch AS nonexistentfile
COPY --from=base-missing --parents /test/nonexistent-file /out/
"""

# target -> paths that must be there, paths that must not (testCopyRelativeParents, testCopyParentsMissingDirectory)
PARENTS_TARGETS = {
    "middle": (["/out/c/d/e", "/out/c/d/foo"], ["/out/a", "/out/e"]),
    "end": (["/out/test/a/b/c/d/e", "/out/test/a/b/c/d/foo"], []),
    "start": (["/out/test/a/b/c/d/e", "/out/test/a/b/c/d/foo", "/out/test/a/b/c/d/e/bay"], ["/out/e", "/out/a"]),
    "double": (["/out/b/c/d/e", "/out/b/c/d/foo"], []),
    "wildcard": (["/out/b/c/d/e", "/out/b2/c/d/e/bar"], []),
    "doublewildcard": (["/out/c/d/e", "/out/c/d/e/bay", "/out/c/d/e/bar"], []),
    "doubleinputs": (["/out/d/e/baz", "/out/d/e2/baz", "/out/c/d/e/bar"], ["/out/d/e/bay"]),
    "normal": (["/out/test/a/b/c/d/e", "/out/test/a/b/c/d/e/bay"], ["/out/e", "/out/a"]),
    "withpivot": (["/out/c/d/e", "/out/c/d/foo"], ["/out/a", "/out/e"]),
    "wildcard-nonexistent": (["/out"], ["/out/a"]),
    "wildcard-afterpivot": (["/out"], ["/out/a", "/out/c2"]),
}


def test_copy_parents_with_pivots_and_wildcards(base_store: object, tmp_path: Path) -> None:
    """testCopyRelativeParents and testCopyParentsMissingDirectory."""
    context = write(tmp_path, {"Dockerfile": RELATIVE_PARENTS})
    for target, (present, absent) in PARENTS_TARGETS.items():
        build(context, tags=[f"test/parents-{target}"], target=target, store=base_store)  # type: ignore[arg-type]
        tree = pybuild_tree(base_store, f"test/parents-{target}")
        assert [path for path in present if path not in tree] == [], target
        assert [path for path in absent if path in tree] == [], target
    assert pybuild_tree(base_store, "test/parents-doubleinputs")["/out/d/e/baz"].kind == "file"
    with pytest.raises(StepError, match="test/nonexistent-file: file does not exist") as caught:
        build(context, target="nonexistentfile", store=base_store)  # type: ignore[arg-type]
    assert caught.value.location is not None and caught.value.location.start_line == 32


EXCLUDE_DOCKERFILE = """
FROM scratch AS builder1
COPY --exclude=*/*.png --exclude=*/*.jpeg . /1
FROM scratch AS builder2
COPY --exclude=*/*.pdf --exclude=*/*.txt . /2
FROM scratch AS builder3
ADD --exclude=*.mp3 dir3/ /3/
FROM scratch AS builder4
COPY --exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt dir* /4/
FROM scratch AS builder5
ADD --exclude=*.mp* --exclude=*.jpeg --exclude=*.png --exclude=*.pdf dir* /5/
FROM scratch AS builder6
ADD --exclude=* dir* /6/
FROM scratch AS builder7
COPY --exclude=*.txt --exclude=*.md hom* /7/
FROM scratch
COPY --from=builder1 / /builder1
COPY --from=builder2 / /builder2
COPY --from=builder3 / /builder3
COPY --from=builder4 / /builder4
COPY --from=builder5 / /builder5
COPY --from=builder6 / /builder6
COPY --from=builder7 / /builder7
"""

# testExcludedFilesOnCopy: path -> expected content (a file's text, a symlink's target), None when excluded
EXCLUDED = {
    "builder1/1/dir1/file-101.png": None,
    "builder1/1/dir1/file-102.txt": "3",
    "builder1/1/dir1/file-103.jpeg": None,
    "builder1/1/dir2/file-201.pdf": "6",
    "builder1/1/dir2/file-202.jpeg": None,
    "builder1/1/dir2/file-203.png": None,
    "builder1/1/dir3/file-301.mp3": "9",
    "builder1/1/dir3/file-302.mpeg": "10",
    "builder1/1/dir4/file-401.txt": "11",
    "builder1/1/dir4/file-402.txt": "file-401.txt",
    "builder1/1/dir4/file-403.txt": "file-404.txt",
    "builder2/2/dir1/file-101.png": "2",
    "builder2/2/dir1/file-102.txt": None,
    "builder2/2/dir1/file-103.jpeg": "4",
    "builder2/2/dir2/file-201.pdf": None,
    "builder2/2/dir2/file-202.jpeg": "7",
    "builder2/2/dir2/file-203.png": "8",
    "builder2/2/dir3/file-301.mp3": "9",
    "builder2/2/dir3/file-302.mpeg": "10",
    "builder2/2/dir4/file-401.txt": None,
    "builder2/2/dir4/file-402.txt": None,
    "builder2/2/dir4/file-403.txt": None,
    "builder3/3/file-301.mp3": None,
    "builder3/3/file-302.mpeg": "10",
    "builder4/4/file-101.png": None,
    "builder4/4/file-102.txt": None,
    "builder4/4/file-103.jpeg": None,
    "builder4/4/file-201.pdf": None,
    "builder4/4/file-202.jpeg": None,
    "builder4/4/file-203.png": None,
    "builder4/4/file-301.mp3": None,
    "builder4/4/file-302.mpeg": "10",
    "builder4/4/dir4/file-401.txt": None,
    "builder5/5/file-101.png": None,
    "builder5/5/file-102.txt": "3",
    "builder5/5/file-103.jpeg": None,
    "builder5/5/file-201.pdf": None,
    "builder5/5/file-301.mp3": None,
    "builder5/5/file-302.mpeg": None,
    "builder5/5/file-401.txt": "11",
    "builder5/5/file-402.txt": "file-401.txt",
    "builder5/5/file-403.txt": "file-404.txt",
    # the reference's own example: a wildcard match whose name is excluded is not copied
    "builder7/7/home.md": None,
    "builder7/7/home.txt": None,
    "builder7/7/homepage.html": "<html>",
}


def test_copy_and_add_exclude(base_store: object, tmp_path: Path) -> None:
    """testExcludedFilesOnCopy, from a plain directory."""
    files = {
        "dir1/file-101.png": "2",
        "dir1/file-102.txt": "3",
        "dir1/file-103.jpeg": "4",
        "dir2/file-201.pdf": "6",
        "dir2/file-202.jpeg": "7",
        "dir2/file-203.png": "8",
        "dir3/file-301.mp3": "9",
        "dir3/file-302.mpeg": "10",
        "dir4/file-401.txt": "11",
        "home.txt": "x",
        "home.md": "y",
        "homepage.html": "<html>",
    }
    context = write(tmp_path / "context", files)
    os.symlink("file-401.txt", context / "dir4" / "file-402.txt")
    os.symlink("file-404.txt", context / "dir4" / "file-403.txt")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(EXCLUDE_DOCKERFILE)
    build(context, dockerfile=dockerfile, tags=["test/exclude"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/exclude")
    contents = {name: text for name, text in files.items()}
    for path, expected in EXCLUDED.items():
        entry = tree.get("/" + path)
        if expected is None:
            assert entry is None, path
            continue
        assert entry is not None, path
        if entry.kind == "symlink":
            assert entry.link == expected, path
        else:
            assert entry.size == len(expected), path
    assert not [path for path in tree if path.startswith("/builder6/6/")]  # everything excluded: an empty folder
    assert tree["/builder6/6"].kind == "dir"
    del contents


def test_an_exclude_pattern_that_does_not_parse_is_refused(base_store: object, tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM scratch\nCOPY --exclude=[ . /x\n"})
    with pytest.raises(InstructionError, match="invalid --exclude pattern") as caught:
        build(tmp_path, store=base_store)  # type: ignore[arg-type]
    assert str(caught.value).startswith("Dockerfile:2: COPY: ")


def test_link_dest_dot_and_empty_are_the_working_directory(base_store: object, tmp_path: Path) -> None:
    """testCopyLinkDotDestDir and testCopyLinkEmptyDestDir."""
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\nWORKDIR /var/www\nCOPY --link testfile .\n"
                'RUN [ "$(cat testfile)" = "contents0" ]\n'
                'WORKDIR /srv\nENV empty=""\nCOPY --link testfile $empty\nRUN [ "$(cat testfile)" = "contents0" ]\n'
            ),
            "testfile": "contents0",
        },
    )
    result = build(context, tags=["test/link-dot"], store=base_store)  # type: ignore[arg-type]
    merges = [digest for digest in result.plan.graph.topological() if isinstance(result.plan.graph.op(digest), MergeOp)]
    assert len(merges) == 2


def _layer_of(store: object, image: str) -> tuple[object, ...]:
    return tuple(image_config(store, store.resolve(image)).diff_ids)  # type: ignore[attr-defined]


def test_link_layer_is_reused_on_a_new_base(base_store: object, tmp_path: Path) -> None:
    """The --link step runs once: on another base its cached layer (same digest) is stacked on the new base."""
    bases = tmp_path / "bases"
    for name in ("a", "b"):
        write(bases / name, {"Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {name} > /base-{name}\n"})
        build(bases / name, tags=[f"test/link-base-{name}"], store=base_store)  # type: ignore[arg-type]
    context = write(
        tmp_path / "app",
        {"Dockerfile": "ARG BASE\nFROM $BASE\nCOPY --link app/ /srv/app/\n", "app/main.txt": "hello"},
    )
    first = build(context, tags=["test/linked-a"], build_args={"BASE": "test/link-base-a"}, store=base_store)  # type: ignore[arg-type]
    second = build(context, tags=["test/linked-b"], build_args={"BASE": "test/link-base-b"}, store=base_store)  # type: ignore[arg-type]
    assert len(first.stats.executed) == 1
    assert second.stats.executed == set() and len(second.stats.cached) == 1  # the base changed, the step did not run
    layers_a, layers_b = _layer_of(base_store, "test/linked-a"), _layer_of(base_store, "test/linked-b")
    assert layers_a[-1] == layers_b[-1]  # one layer, byte for byte
    assert layers_a[:-1] == _layer_of(base_store, "test/link-base-a")
    assert layers_b[:-1] == _layer_of(base_store, "test/link-base-b")
    (link_a,) = [d for d in first.plan.graph.topological() if isinstance(first.plan.graph.op(d), FileOp)]
    (link_b,) = [d for d in second.plan.graph.topological() if isinstance(second.plan.graph.op(d), FileOp)]
    assert first.keys[link_a] == second.keys[link_b]  # its key does not take the parent's
    tree = pybuild_tree(base_store, "test/linked-b")
    assert "/base-b" in tree and "/base-a" not in tree and tree["/srv/app/main.txt"].size == len("hello")

    unlinked = write(
        tmp_path / "unlinked", {"Dockerfile": "ARG BASE\nFROM $BASE\nCOPY app/ /srv/app/\n", "app/main.txt": "hello"}
    )
    build(unlinked, build_args={"BASE": "test/link-base-a"}, store=base_store)  # type: ignore[arg-type]
    again = build(unlinked, build_args={"BASE": "test/link-base-b"}, store=base_store)  # type: ignore[arg-type]
    assert len(again.stats.executed) == 1  # without --link the copy runs again on the new base


def test_link_does_not_follow_the_destinations_symlinks(base_store: object, tmp_path: Path) -> None:
    """BuildKit's documented difference: a --link copy cannot see the stage, so a symlink on the way is replaced by
    a directory, where a plain copy follows it."""
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE} AS base\nRUN mkdir /srv && ln -s /srv /app\n"
                "FROM base AS plain\nCOPY f /app/\n"
                "FROM base AS linked\nCOPY --link f /app/\n"
            ),
            "f": "data",
        },
    )
    build(context, tags=["test/link-plain"], target="plain", store=base_store)  # type: ignore[arg-type]
    build(context, tags=["test/link-symlink"], target="linked", store=base_store)  # type: ignore[arg-type]
    plain = pybuild_tree(base_store, "test/link-plain")
    assert plain["/app"].kind == "symlink" and "/srv/f" in plain
    linked = pybuild_tree(base_store, "test/link-symlink")
    assert linked["/app"].kind == "dir" and "/app/f" in linked and "/srv/f" not in linked


def test_link_with_chown_takes_ids_only(base_store: object, tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": f"FROM {BASE_IMAGE}\nCOPY --link --chown=1000:1001 f /f\n", "f": "x"})
    build(tmp_path, tags=["test/link-chown"], store=base_store)  # type: ignore[arg-type]
    entry = pybuild_tree(base_store, "test/link-chown")["/f"]
    assert (entry.uid, entry.gid) == (1000, 1001)
    write(tmp_path, {"Dockerfile": f"FROM {BASE_IMAGE}\nCOPY --link --chown=nobody f /f\n"})
    with pytest.raises(InstructionError, match='--link cannot look up the user or group "nobody"'):
        build(tmp_path, store=base_store)  # type: ignore[arg-type]


def test_link_with_chmod_is_a_plain_copy_as_in_buildkit(base_store: object, tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": f"FROM {BASE_IMAGE}\nCOPY --link --chmod=700 f /opt/f\n", "f": "x"})
    result = build(tmp_path, tags=["test/link-chmod"], store=base_store)  # type: ignore[arg-type]
    graph = result.plan.graph
    assert not [digest for digest in graph.topological() if isinstance(graph.op(digest), MergeOp)]
    tree = pybuild_tree(base_store, "test/link-chmod")
    assert stat.S_IMODE(tree["/opt/f"].mode) == 0o700 and stat.S_IMODE(tree["/opt"].mode) == 0o700


def test_excluded_files_are_not_part_of_the_cache_key(base_store: object, tmp_path: Path) -> None:
    context = write(
        tmp_path,
        {
            "Dockerfile": "FROM scratch\nCOPY --exclude=*.log --exclude=cache . /app/\n",
            "a.txt": "1",
            "x.log": "1",
            "cache/c": "1",
        },
    )
    build(context, store=base_store)  # type: ignore[arg-type]
    (context / "x.log").write_text("2")
    (context / "cache" / "c").write_text("2")
    assert build(context, store=base_store).stats.executed == set()  # type: ignore[arg-type]
    (context / "a.txt").write_text("2")
    assert len(build(context, store=base_store).stats.executed) == 1  # type: ignore[arg-type]
