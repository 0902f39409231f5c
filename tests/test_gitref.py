"""Which ADD sources are git repositories: the cases of BuildKit's dfgitutil git_ref_test.go (for ADD, where
`github.com/x` stays a local path), and the query forms."""

from __future__ import annotations

import pytest

from buildkit_py.frontend.gitref import GitRef, GitRefError, is_http_source, parse_git_ref

CASES: list[tuple[str, GitRef | None]] = [
    ("https://example.com/", None),
    ("https://example.com/foo", None),
    ("https://example.com/foo.git", GitRef("https://example.com/foo.git")),
    ("https://example.com/foo.git#deadbeef", GitRef("https://example.com/foo.git", ref="deadbeef")),
    ("https://example.com/foo.git#release/1.2", GitRef("https://example.com/foo.git", ref="release/1.2")),
    ("https://example.com/foo.git/", None),
    ("https://example.com/foo.git.bar", None),
    ("git://example.com/foo", GitRef("git://example.com/foo")),
    ("github.com/moby/buildkit", None),
    ("custom.xyz/moby/buildkit.git", None),
    ("https://github.com/moby/buildkit", None),
    ("https://foo:bar@github.com/moby/buildkit.git", GitRef("https://foo:bar@github.com/moby/buildkit.git")),
    ("git@github.com:moby/buildkit", GitRef("git@github.com:moby/buildkit")),
    ("git@github.com:moby/buildkit.git", GitRef("git@github.com:moby/buildkit.git")),
    (
        "git@bitbucket.org:atlassianlabs/atlassian-docker.git",
        GitRef("git@bitbucket.org:atlassianlabs/atlassian-docker.git"),
    ),
    (
        "https://github.com/foo/bar.git#baz/qux:quux/quuz",
        GitRef("https://github.com/foo/bar.git", ref="baz/qux", subdir="quux/quuz"),
    ),
    ("http://github.com/docker/docker.git:#branch", None),
    (
        "https://github.com/docker/docker.git#:myfolder",
        GitRef("https://github.com/docker/docker.git", subdir="myfolder"),
    ),
    ("./.git", None),
    (".git", None),
    ("ssh://git@example.com/repo#v1:../../etc", GitRef("ssh://git@example.com/repo", ref="v1", subdir="etc")),
    ("ftp://example.com/foo.git", None),
    (
        "https://example.com/foo.git?tag=v1&subdir=docs&keep-git-dir",
        GitRef("https://example.com/foo.git", ref="refs/tags/v1", subdir="docs", keep_git_dir=True),
    ),
    (
        "https://example.com/foo.git?branch=main&checksum=abc123",
        GitRef("https://example.com/foo.git", ref="refs/heads/main", checksum="abc123"),
    ),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_git_refs_as_buildkit_parses_them(source: str, expected: GitRef | None) -> None:
    assert parse_git_ref(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("https://example.com/foo.git?ref=a&ref=b", "multiple values"),
        ("https://example.com/foo.git#a?", None),  # a fragment holds the query mark: a ref named "a?"
        ("https://example.com/foo.git?tag=v1&branch=main", "branch conflicts with tag"),
        ("https://example.com/foo.git#v1?ref=v2", None),
        ("https://example.com/foo.git?ref=v1#v2", "ref conflicts"),
        ("https://example.com/foo.git?what=1", "unexpected query 'what'"),
        ("https://example.com/foo.git?keep-git-dir=maybe", "invalid keep-git-dir value"),
        ("https://example.com/foo.git?submodules=true", "submodules are not fetched"),
        ("https://example.com/foo.git#--upload-pack=touch${IFS}x", "invalid git ref"),
        ("https://example.com/foo.git?ref=-x", "invalid git ref"),
    ],
)
def test_bad_queries_are_refused(source: str, message: str | None) -> None:
    if message is None:
        assert parse_git_ref(source) is not None
        return
    with pytest.raises(GitRefError, match=message):
        parse_git_ref(source)


def test_http_sources_are_urls_that_are_not_repositories() -> None:
    assert is_http_source("https://example.com/file.tar.gz")
    assert is_http_source("http://127.0.0.1:8080/")
    assert not is_http_source("https://example.com/repo.git")
    assert not is_http_source("git@example.com:repo")
    assert not is_http_source("file.txt")
