"""Which ADD sources are git repositories, and what they name: BuildKit's `dfgitutil.ParseGitRef` for ADD.

    https://host/path/repo.git#ref:subdir     http(s) only when the path ends in ".git"
    git://host/repo#ref                        git:// and ssh:// URLs, whatever their path
    git@host:org/repo.git#ref:subdir           scp-like ssh addresses (user@host:path)

The fragment is `ref[:subdir]`; a query may say the same (`?ref=`, `?tag=`, `?branch=`, `?subdir=`) and more
(`?keep-git-dir`, `?checksum=` or `?commit=`). `./x`, `../x` and `github.com/...` stay local paths for ADD, and so
does anything with another scheme.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from dataclasses import dataclass

__all__ = ["GitRef", "GitRefError", "is_http_source", "parse_git_ref"]

_SCHEME = re.compile(r"^[a-zA-Z0-9]+://")
_GIT_SCHEMES = frozenset({"http", "https", "ssh", "git"})
_SCP_LIKE = re.compile(r"^([a-zA-Z0-9\-_]+)@([a-zA-Z0-9\-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class GitRefError(ValueError):
    """A git address whose fragment or query cannot be used."""


@dataclass(frozen=True)
class GitRef:
    """A repository to clone: `remote` for git (no fragment, no query), the `ref` to check out (a branch, tag or
    commit; "" for the remote's HEAD), the `subdir` to take (relative, cleaned; "" for all of it)."""

    remote: str
    ref: str = ""
    subdir: str = ""
    checksum: str = ""
    keep_git_dir: bool | None = None


def is_http_source(source: str) -> bool:
    """An http(s) URL that is not a git repository: ADD downloads it."""
    if not source.startswith(("http://", "https://")):
        return False
    try:
        return parse_git_ref(source) is None
    except GitRefError:
        return False


def _fragment(fragment: str) -> tuple[str, str]:
    ref, _, subdir = fragment.partition(":")
    return ref, posixpath.normpath(posixpath.join("/", subdir)).lstrip("/")


def parse_git_ref(source: str) -> GitRef | None:
    """The repository `source` names, or None when ADD should treat it as a file path or a plain URL."""
    if source.startswith(("./", "../", "github.com/")):
        return None
    scheme = _SCHEME.match(source)
    if scheme is not None:
        if scheme.group(0)[:-3].lower() not in _GIT_SCHEMES:
            return None
        parts = urllib.parse.urlsplit(source)
        if parts.scheme.lower() in ("http", "https") and not urllib.parse.unquote(parts.path).endswith(".git"):
            return None
        remote = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        query, fragment = parts.query, parts.fragment
    else:
        match = _SCP_LIKE.match(source)
        if match is None:
            return None
        user, host, path, query, fragment = match.groups()
        remote = f"{user}@{host}:{path}"
        query, fragment = query or "", fragment or ""
    ref, subdir = _fragment(fragment) if fragment else ("", "")
    parsed = _with_query(GitRef(remote=remote, ref=ref, subdir=subdir), query)
    if parsed.ref.startswith("-"):
        raise GitRefError(f"invalid git ref {parsed.ref!r}")  # git would read it as an option
    return parsed


def _boolean(key: str, values: list[str]) -> bool:
    if not values or values[0] == "" or values[0] in _TRUE:
        return True
    if values[0] in _FALSE:
        return False
    raise GitRefError(f"invalid {key} value: {values[0]!r}")


def _agreeing(name: str, current: str, value: str) -> str:
    if current and current != value:
        raise GitRefError(f"{name} conflicts: {current!r} vs {value!r}")
    return value


def _with_query(ref: GitRef, query: str) -> GitRef:
    if not query:
        return ref
    values = urllib.parse.parse_qs(query, keep_blank_values=True)
    named, subdir, checksum = ref.ref, ref.subdir, ""
    keep: bool | None = None
    tag = branch = ""
    for key, given in values.items():
        if len(given) > 1:
            raise GitRefError(f"query {key!r} has multiple values")
        value = given[0]
        if value == "" and key not in ("keep-git-dir", "submodules"):
            raise GitRefError(f"query {key!r} has no value")
        if key == "ref":
            named = _agreeing("ref", named, value)
        elif key == "subdir":
            subdir = _agreeing("subdir", subdir, value)
        elif key == "tag":
            tag = value if value.startswith("refs/tags/") else "refs/tags/" + value
        elif key == "branch":
            branch = value if value.startswith("refs/heads/") else "refs/heads/" + value
        elif key in ("checksum", "commit"):
            checksum = value
        elif key == "keep-git-dir":
            keep = _boolean(key, given)
        elif key == "submodules":
            if _boolean(key, given):
                raise GitRefError("submodules are not fetched by pybuild: add ?submodules=false, or clone in a RUN")
        else:
            raise GitRefError(f"unexpected query {key!r}")
    if tag and branch:
        raise GitRefError("branch conflicts with tag")
    for full_name in (tag, branch):
        if full_name:
            named = _agreeing("ref", named, full_name)
    subdir = posixpath.normpath(posixpath.join("/", subdir)).lstrip("/") if subdir else ""
    return GitRef(remote=ref.remote, ref=named, subdir=subdir, checksum=checksum, keep_git_dir=keep)
