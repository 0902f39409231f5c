"""Where package managers and compilers keep their caches, and how a Dockerfile keeps them out of its layers.

A cache is matched by its root folder: a fixed path (`/var/lib/apt/lists`), a folder of a home directory (`/root/.npm`
and `/home/<user>/.npm`), or a folder name anywhere (`__pycache__`). `{root}` in a fix is the folder found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CachePattern:
    label: str
    match: Callable[[str], str]  # the cache root the path lies under, "" when it does not
    fix: str


def _under(*prefixes: str) -> Callable[[str], str]:
    def match(path: str) -> str:
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix
        return ""

    return match


def _in_home(folder: str) -> Callable[[str], str]:
    """`folder` of root's home or of a user's home under /home: `.npm` matches /root/.npm and /home/node/.npm."""

    def match(path: str) -> str:
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "root":
            home = 2
        elif len(parts) > 3 and parts[1] == "home" and parts[2]:
            home = 3
        else:
            return ""
        wanted = folder.split("/")
        if parts[home : home + len(wanted)] != wanted:
            return ""
        return "/".join(parts[: home + len(wanted)])

    return match


def _any(*matchers: Callable[[str], str]) -> Callable[[str], str]:
    def match(path: str) -> str:
        for matcher in matchers:
            found = matcher(path)
            if found:
                return found
        return ""

    return match


def _segment(name: str) -> Callable[[str], str]:
    marker = "/" + name + "/"

    def match(path: str) -> str:
        position = path.find(marker)
        return path[: position + len(marker) - 1] if position >= 0 else ""

    return match


CACHE_PATTERNS = (
    CachePattern(
        "apt package lists",
        _under("/var/lib/apt/lists"),
        "end the same RUN with `&& rm -rf /var/lib/apt/lists/*`, or use RUN --mount=type=cache,target=/var/lib/apt",
    ),
    CachePattern(
        "apt package cache",
        _under("/var/cache/apt"),
        "run `apt-get clean` in the same RUN, or use RUN --mount=type=cache,target=/var/cache/apt",
    ),
    CachePattern(
        "pip cache",
        _in_home(".cache/pip"),
        "use `pip install --no-cache-dir`, or RUN --mount=type=cache,target={root}",
    ),
    CachePattern(
        "apk cache",
        _under("/var/cache/apk"),
        "use `apk add --no-cache`, or RUN --mount=type=cache,target=/var/cache/apk",
    ),
    CachePattern(
        "npm cache",
        _in_home(".npm"),
        "run `npm cache clean --force` in the same RUN as `npm install`/`npm ci`, or use "
        "RUN --mount=type=cache,target={root}",
    ),
    CachePattern(
        "yarn cache",
        _any(_under("/usr/local/share/.cache/yarn"), _in_home(".cache/yarn")),
        "run `yarn cache clean` in the same RUN as `yarn install`, or use RUN --mount=type=cache,target={root}",
    ),
    CachePattern(
        "Go module cache",
        _any(_in_home("go/pkg/mod"), _under("/go/pkg/mod")),
        "use RUN --mount=type=cache,target={root} for `go build`, or build in another stage and COPY --from only "
        "the binary",
    ),
    CachePattern(
        "Go build cache",
        _in_home(".cache/go-build"),
        "use RUN --mount=type=cache,target={root} for `go build`, or run `go clean -cache` in the same RUN",
    ),
    CachePattern(
        "cargo registry cache",
        _any(
            _in_home(".cargo/registry"),
            _in_home(".cargo/git"),
            _under("/usr/local/cargo/registry", "/usr/local/cargo/git"),
        ),
        "use RUN --mount=type=cache,target={root} for `cargo build`, or build in another stage and COPY --from only "
        "the binary",
    ),
    CachePattern(
        "node_modules/.cache",
        _segment("node_modules/.cache"),
        "delete node_modules/.cache in the same RUN, or mount it with RUN --mount=type=cache",
    ),
    CachePattern(
        "Python bytecode cache",
        _segment("__pycache__"),
        "set ENV PYTHONDONTWRITEBYTECODE=1 before the RUN, or delete __pycache__ in the same RUN",
    ),
)


def cache_root(path: str) -> tuple[CachePattern, str] | None:
    """The cache `path` lies in and that cache's root folder, or None."""
    for pattern in CACHE_PATTERNS:
        root = pattern.match(path)
        if root:
            return pattern, root
    return None


__all__ = ["CACHE_PATTERNS", "CachePattern", "cache_root"]
