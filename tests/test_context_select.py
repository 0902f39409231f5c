"""What a COPY source selects, as Docker 20.10's classic builder decides it (each rule observed with
`DOCKER_BUILDKIT=0 docker build`; the message texts are Docker's)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from buildkit_py.context.dockerignore import IgnoreRules, parse_ignore_file
from buildkit_py.context.select import (
    IMPLIED_DIR,
    CopyFilter,
    has_wildcards,
    is_implied,
    select_sources,
    walk_selected,
)
from buildkit_py.errors import ContextError, StepError
from buildkit_py.fs.beneath import RootDir


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "context"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "f1").write_text("one\n")
    (root / "d" / "sub" / "f2").write_text("two\n")
    (root / "d" / "sl").symlink_to("f1")
    (root / "f1").write_text("top\n")
    (root / "f2").write_text("top2\n")
    (root / "fa.txt").write_text("a\n")
    (root / "lnk").symlink_to("d/f1")
    (root / "lnkdir").symlink_to("d")
    (root / "abslnk").symlink_to("/etc/passwd")
    (root / "outlnk").symlink_to("../outside")
    (root / "ig").mkdir()
    (root / "ig" / "secret").write_text("s\n")
    (root / "ig" / "keep").write_text("k\n")
    return root


def select(root: Path, src: str, rules: IgnoreRules | None = None, wildcard: bool = True) -> list[tuple[str, str]]:
    with RootDir(root) as tree:
        found = select_sources(tree, src, allow_wildcard=wildcard, follow_symlinks=True, exclude=rules)
    return [(item.name, item.relpath) for item in found]


def walk_entries(root: Path, src: str, rules: IgnoreRules | None = None) -> list[tuple[str, os.stat_result]]:
    with RootDir(root) as tree:
        return list(walk_selected(tree, src, allow_wildcard=True, follow_symlinks=True, exclude=rules))


def walk(root: Path, src: str, rules: IgnoreRules | None = None) -> list[str]:
    return [relpath for relpath, _ in walk_entries(root, src, rules)]


def test_plain_paths_are_cleaned(context: Path) -> None:
    assert select(context, "d") == [("d", "d")]
    assert select(context, "/f1") == [("f1", "f1")]
    assert select(context, "./d/../f1") == [("f1", "f1")]
    assert select(context, "f1/") == [("f1", "f1")]
    assert select(context, ".") == [(".", "")]


def test_top_level_symlink_is_followed_and_keeps_its_name(context: Path) -> None:
    assert select(context, "lnk") == [("lnk", "d/f1")]
    assert select(context, "lnkdir") == [("lnkdir", "d")]
    assert select(context, "lnkdir/f1") == [("f1", "d/f1")]


def test_symlink_not_followed_when_asked(context: Path) -> None:
    with RootDir(context) as tree:
        found = select_sources(tree, "lnk", allow_wildcard=True, follow_symlinks=False, exclude=None)
    assert [(item.relpath, stat.S_ISLNK(item.info.st_mode)) for item in found] == [("lnk", True)]


def test_symlinks_resolve_inside_the_context(context: Path) -> None:
    # /etc/passwd means <context>/etc/passwd and ../outside means <context>/outside: both missing, not forbidden
    with pytest.raises(StepError, match=r"^file not found in build context or excluded by \.dockerignore: stat abslnk"):
        select(context, "abslnk")
    with pytest.raises(StepError, match="stat outlnk: file does not exist"):
        select(context, "outlnk")
    (context / "etc").mkdir()
    (context / "etc" / "passwd").write_text("inside\n")
    assert select(context, "abslnk") == [("abslnk", "etc/passwd")]


def test_missing_source_message(context: Path) -> None:
    with pytest.raises(StepError) as error:
        select(context, "missing")
    assert error.value.message == (
        "file not found in build context or excluded by .dockerignore: stat missing: file does not exist"
    )
    with pytest.raises(StepError, match="stat d/nope: file does not exist"):
        select(context, "./d/nope")
    with pytest.raises(StepError, match="stat nope: file does not exist"):
        select(context, "/nope")


def test_lexical_escape_is_forbidden(context: Path) -> None:
    with pytest.raises(ContextError, match=r"^forbidden path outside the build context: \.\./x \(\)$"):
        select(context, "../x")
    with pytest.raises(ContextError, match=r"forbidden path outside the build context: d/\.\./\.\./f1 \(\)"):
        select(context, "d/../../f1")
    with pytest.raises(ContextError):
        select(context, "/../x")


def test_wildcards_follow_go_match(context: Path) -> None:
    assert select(context, "f*") == [("f1", "f1"), ("f2", "f2"), ("fa.txt", "fa.txt")]
    assert select(context, "f[12]") == [("f1", "f1"), ("f2", "f2")]
    assert select(context, "f[^1]*") == [("f2", "f2"), ("fa.txt", "fa.txt")]
    assert select(context, "d/?1") == [("f1", "d/f1")]
    assert select(context, "*/f?") == [("f1", "d/f1")]
    assert select(context, "./f?") == [("f1", "f1"), ("f2", "f2")]
    assert select(context, "nomatch*") == []
    assert select(context, "f[") == []  # a malformed pattern matches nothing, as moby ignores ErrBadPattern


def test_wildcard_match_of_a_symlink_follows_it(context: Path) -> None:
    assert select(context, "ln?") == [("lnk", "d/f1")]


def test_wildcards_do_not_walk_into_symlinked_directories(context: Path) -> None:
    assert select(context, "lnkdir/*") == []


def test_wildcard_matching_a_dangling_symlink_fails(context: Path) -> None:
    with pytest.raises(StepError, match="stat abslnk: file does not exist"):
        select(context, "abs*")


def test_wildcard_characters_escaped_or_disabled(context: Path) -> None:
    (context / "star*").write_text("literal\n")
    assert has_wildcards("a*") and has_wildcards("a[b]") and has_wildcards("?")
    assert not has_wildcards("a\\*") and not has_wildcards("plain")
    assert select(context, "star*", wildcard=False) == [("star*", "star*")]
    assert select(context, "sta[r]\\*") == [("star*", "star*")]  # in a pattern, a backslash escapes the star
    with pytest.raises(StepError):  # no unescaped wildcard: a plain path, backslash included (moby's copier)
        select(context, "star\\*")


def test_walk_is_pre_order_by_name_and_keeps_symlinks(context: Path) -> None:
    assert walk(context, "d") == ["d/f1", "d/sl", "d/sub", "d/sub/f2"]
    assert walk(context, "lnk") == ["d/f1"]
    (context / "d" / "a.b").mkdir()
    (context / "d" / "a.b" / "x").write_text("")
    (context / "d" / "a").mkdir()
    (context / "d" / "a" / "y").write_text("")
    assert walk(context, "d")[:4] == ["d/a", "d/a/y", "d/a.b", "d/a.b/x"]


def test_walk_yields_lstat(context: Path) -> None:
    entries = dict(walk_entries(context, "d"))
    assert stat.S_ISLNK(entries["d/sl"].st_mode)
    assert entries["d/sub/f2"].st_size == 4


def test_ignored_file_is_not_found(context: Path) -> None:
    rules = parse_ignore_file("ig/secret\n")
    with pytest.raises(StepError, match="stat ig/secret: file does not exist"):
        select(context, "ig/secret", rules)
    assert walk(context, "ig", rules) == ["ig/keep"]
    assert select(context, "ig/*", rules) == [("keep", "ig/keep")]


def test_ignored_symlink_cannot_be_followed(context: Path) -> None:
    with pytest.raises(StepError, match="stat lnkdir/f1"):
        select(context, "lnkdir/f1", parse_ignore_file("lnkdir\n"))


def test_excluded_directory_with_exception_is_implied(context: Path) -> None:
    # Docker's client sends d/x without d's header: the daemon makes d 0755 root
    os.chmod(context / "d", 0o700)
    rules = parse_ignore_file("d\n!d/sub/f2\n")
    with RootDir(context) as tree:
        found = select_sources(tree, "d", allow_wildcard=True, follow_symlinks=True, exclude=rules)
    assert is_implied(found[0].info) and found[0].info.st_mode == IMPLIED_DIR.st_mode
    entries = walk_entries(context, ".", rules)
    names = [relpath for relpath, _ in entries]
    assert "d" in names and "d/sub" in names and "d/sub/f2" in names and "d/f1" not in names
    assert is_implied(dict(entries)["d/sub"])
    with pytest.raises(StepError):
        select(context, "d", parse_ignore_file("d\n!d/nothing-here\n"))


def test_excluded_directory_without_exception_is_skipped(context: Path) -> None:
    assert "d/f1" not in walk(context, ".", parse_ignore_file("d\n"))


def test_selection_reads_nothing_and_writes_nothing(context: Path) -> None:
    before = sorted(str(p) for p in context.rglob("*"))
    walk(context, ".")
    assert sorted(str(p) for p in context.rglob("*")) == before


def test_walk_of_twenty_thousand_files(tmp_path: Path) -> None:
    root = tmp_path / "big"
    for group in range(100):
        folder = root / f"g{group:03}"
        folder.mkdir(parents=True)
        for index in range(200):
            (folder / f"f{index:03}").write_bytes(b"")
    rules = parse_ignore_file("g000\n*.log\n!g001/f001\n")
    count = len(walk_entries(root, ".", rules))
    assert count == 99 * 201


def walk_kept(root: Path, src: str, keep: CopyFilter | None, rules: IgnoreRules | None = None) -> list[str]:
    with RootDir(root) as tree:
        entries = walk_selected(tree, src, allow_wildcard=True, follow_symlinks=True, exclude=rules, keep=keep)
        return [relpath for relpath, _ in entries]


def test_copy_filters_exclude_below_each_source_and_keep_parents(context: Path) -> None:
    """--exclude matches paths relative to each source; an excluded directory holding an exception still comes,
    just before what it holds; --parents' pattern keeps only matches, with the directories that lead to them."""
    assert walk_kept(context, "d", CopyFilter.of(("sub",), "")) == ["d/f1", "d/sl"]
    assert walk_kept(context, "d", CopyFilter.of(("*", "!sub/f2"), "")) == ["d/sub", "d/sub/f2"]
    assert walk_kept(context, "/", CopyFilter.of((), "d/sub/f2")) == ["d", "d/sub", "d/sub/f2"]
    assert walk_kept(context, "/", CopyFilter.of((), "*/f1")) == ["d", "d/f1"]
    assert walk_kept(context, "/", CopyFilter.of((), "**/f2")) == ["d", "d/sub", "d/sub/f2", "f2"]
    assert walk_kept(context, "/", CopyFilter.of(("d",), "**/f2")) == ["f2"]
    assert walk_kept(context, "/", CopyFilter.of((), "ig/keep"), parse_ignore_file("ig/keep")) == []
    # a file a wildcard matches is left out by name; a matched directory is filtered below
    assert walk_kept(context, "f*", CopyFilter.of(("f2",), "")) == ["f1", "fa.txt"]
    assert walk_kept(context, "[d]", CopyFilter.of(("d",), "")) == ["d/f1", "d/sl", "d/sub", "d/sub/f2"]
