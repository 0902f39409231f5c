"""The walk's shortcut: below a directory where `IgnoreRules.includes_all_below` holds, no pattern is matched again.
The shortcut must never change an answer, so it is checked against matching every path, on chosen and on generated
patterns, and a walk with it against a walk that matches every entry."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from hypothesis import given, settings, strategies

from buildkit_py.context.dockerignore import IgnoreRules
from buildkit_py.context.select import SelectedPath, walk_tree
from buildkit_py.fs.beneath import RootDir

NAMES = ("a", "b", "ab", "a.tmp", "b.md", "x")
PATHS = ["/".join(parts) for depth in (1, 2, 3, 4) for parts in itertools.product(NAMES, repeat=depth)]
PATTERN_PARTS = ("a", "b", "*", "?", "a*", "*.tmp", "*.md", "**", "[ab]", "[^a]", "a?", "x", "\\a")


def _check(rules: IgnoreRules) -> None:
    for reldir in PATHS:
        if not rules.includes_all_below(reldir):
            continue
        assert not rules.excludes(reldir)
        prefix = reldir + "/"
        for path in PATHS:
            if path.startswith(prefix):
                assert not rules.excludes(path), (rules.patterns, reldir, path)


def test_includes_all_below_on_chosen_patterns() -> None:
    cases = [
        ("*.tmp",),
        ("a",),
        ("a/b",),
        ("a/*",),
        ("a/**",),
        ("a**",),
        ("**/b",),
        ("*/b", "!*/b/x"),
        ("a", "!a/b"),
        ("*", "!a", "a/b.md"),
        ("a?/*.md", "!ab/x.md"),
        ("[^a]/x",),
        ("\\a/b",),
        ("b/a/x",),
    ]
    for patterns in cases:
        _check(IgnoreRules(patterns))


_pattern = strategies.lists(strategies.sampled_from(PATTERN_PARTS), min_size=1, max_size=3).map("/".join)
_rules = strategies.lists(strategies.tuples(strategies.booleans(), _pattern), min_size=1, max_size=4).map(
    lambda items: tuple(("!" if negated else "") + pattern for negated, pattern in items)
)


@settings(max_examples=150, deadline=None)
@given(_rules)
def test_includes_all_below_on_generated_patterns(patterns: tuple[str, ...]) -> None:
    _check(IgnoreRules(patterns))


def test_includes_all_below_says_no_where_a_pattern_reaches_below() -> None:
    assert IgnoreRules(("*.tmp", "scratch")).includes_all_below("src")
    assert not IgnoreRules(("src/*.tmp",)).includes_all_below("src")
    assert not IgnoreRules(("**/*.tmp",)).includes_all_below("src")
    assert not IgnoreRules(("src/a/b",)).includes_all_below("src")
    assert not IgnoreRules(("src/a/b",)).includes_all_below("src/a/b/c")  # excluded itself
    assert IgnoreRules(("src/a/b",)).includes_all_below("src/a/c")
    assert not IgnoreRules(("*.tmp",)).includes_all_below(".")
    assert IgnoreRules(()).includes_all_below(".")


class _Unsettled(IgnoreRules):
    """The rules as they were before the shortcut: every entry is matched."""

    def includes_all_below(self, reldir: str) -> bool:
        return False


def test_walk_with_the_shortcut_is_the_walk_without_it(tmp_path: Path) -> None:
    for path in PATHS:
        if path.count("/") < 3:
            os.makedirs(tmp_path / path, exist_ok=True)
        else:
            (tmp_path / path).write_text(path)
    cases = [("*.tmp",), ("a/*.md", "!a/b/*.md"), ("**/x", "a"), ("*", "!b"), ("b/a?/*",), ("a", "!a/b/x")]
    walked = 0
    with RootDir(tmp_path) as root:
        info = root.lstat("")
        for patterns in cases:
            for selected in (
                SelectedPath(".", "", info),
                SelectedPath("a", "a", root.lstat("a")),
                SelectedPath("b", "b", root.lstat("b")),
            ):
                fast = [(relpath, st.st_mode) for relpath, st in walk_tree(root, selected, IgnoreRules(patterns))]
                slow = [(relpath, st.st_mode) for relpath, st in walk_tree(root, selected, _Unsettled(patterns))]
                assert fast == slow, patterns
                walked += len(fast)
    assert walked > 1000
