"""Which files a COPY or ADD source selects: the one place that decides it, for copying and cache hashing alike.

Docker's classic builder (moby `builder/dockerfile/copy.go`) works on the context as the client sent it, already
filtered by `.dockerignore`, and resolves a source path with `FollowSymlinkInScope`: symlinks are followed but never
leave the source root, while a path that is lexically outside it (`../x`) is refused. A wildcard is matched with Go's
`filepath.Match` against the paths a `filepath.Walk` of the root visits, so it never reaches through a symlinked
directory. Everything here only reads; the results come in Go's walk order (a directory, then its entries by name).

Every access goes through one `RootDir` of the source root, by descriptor and never through a symlink
(`fs.beneath`): a symlink the resolution follows on purpose is read with readlink and its target resolved again
beneath the root, and the relpaths handed out have no symlink on the way. A later read of such a relpath that meets a
symlink (the tree changed under the build) fails with ContextError instead of reading outside the root.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from ..errors import ContextError, StepError
from ..fs.beneath import RootDir
from .dockerignore import IgnoreRules

__all__ = [
    "IMPLIED_DIR",
    "CopyFilter",
    "SelectedPath",
    "has_wildcards",
    "is_implied",
    "select_kept",
    "select_sources",
    "source_error",
    "walk_selected",
    "walk_tree",
]

_MAX_SYMLINKS = 255

# A directory that .dockerignore excludes but that holds an exception (`dir` + `!dir/keep`): Docker's client does not
# send its header, so the daemon creates it with MkdirAll: 0755, root, no mtime of its own. st_nlink 0 marks it.
IMPLIED_DIR = os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, 0, 0, 0))


def is_implied(info: os.stat_result) -> bool:
    return info.st_nlink == 0 and stat.S_ISDIR(info.st_mode)


@dataclass(frozen=True, slots=True)
class SelectedPath:
    """One top-level match of a source.

    `name` is the base name the source takes inside a destination directory (the name as written or matched, even
    when it is a symlink that was followed); `relpath` is where it really is, relative to the source root, with every
    symlink resolved ("" for the root itself); `info` is its lstat (or IMPLIED_DIR)."""

    name: str
    relpath: str
    info: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


@dataclass(frozen=True)
class CopyFilter:
    """What a COPY takes from beneath each source it selected, by path relative to that source (.dockerignore's
    pattern rules): `exclude` (`--exclude`) leaves out what matches, `include` (`--parents`' pattern) keeps only what
    matches, itself or through a parent. A directory that is left out but holds something kept is still copied,
    just before the first thing it holds (fsutil's delayed parent directories), so the kept paths keep their parents.

    A file that a wildcard source matches is left out when its name matches `exclude`, as the reference's example
    `COPY --exclude=*.txt hom* /mydir/` has it; a matched directory is copied, its entries filtered (fsutil matches
    only below each source, and BuildKit's tests expect `ADD --exclude=* dir* /6` to give an empty /6).
    """

    exclude: IgnoreRules | None = None
    include: IgnoreRules | None = None

    @classmethod
    def of(cls, exclude_patterns: tuple[str, ...], include_pattern: str) -> CopyFilter | None:
        if not exclude_patterns and not include_pattern:
            return None
        return cls(
            exclude=IgnoreRules(exclude_patterns) if exclude_patterns else None,
            include=IgnoreRules((include_pattern,)) if include_pattern else None,
        )

    def _include_parts(self) -> list[str] | None:
        """The include pattern's components, or None when `**` lets it reach any depth."""
        if self.include is None:
            return None
        pattern = self.include.patterns[0]
        return None if "**" in pattern else [part for part in pattern.split("/") if part]

    def may_hold_kept(self, rel: str) -> bool:
        """Whether something beneath the left-out directory `rel` may still be kept. Without `**`, the include
        pattern matches only as deep as it has components, and only below directories that match its first ones."""
        excluded = self.exclude is not None and self.exclude.excludes(rel, is_dir=True)
        if excluded and self.exclude is not None and not self.exclude.may_descend(rel):
            return False
        parts = self._include_parts()
        if parts is None or self.include is None or self.include.excludes(rel, is_dir=True):
            return True
        names = rel.split("/")
        if len(names) >= len(parts):
            return False
        for name, part in zip(names, parts):
            regex = _component_regex(part)
            if regex is None or not regex.fullmatch(name):
                return False
        return True

    def keeps(self, rel: str, parent_included: bool) -> bool:
        if self.exclude is not None and self.exclude.excludes(rel):
            return False
        return parent_included or self.include is None or self.include.excludes(rel)

    def keeps_match(self, name: str) -> bool:
        """Whether a wildcard match named `name` is copied at all."""
        return self.exclude is None or not self.exclude.excludes(name)


def has_wildcards(src: str) -> bool:
    """moby's containsWildcards: `*`, `?` or `[` not escaped by a backslash."""
    index = 0
    while index < len(src):
        char = src[index]
        if char == "\\":
            index += 2
            continue
        if char in "*?[":
            return True
        index += 1
    return False


def source_error(relpath: str, error: OSError) -> ContextError:
    """A read of `relpath` that failed after the selection found it there: the tree changed under the build, or it
    cannot be read."""
    shown = relpath or "."
    if error.errno in (errno.ELOOP, errno.EXDEV):
        return ContextError(f"{shown} changed during the build: a symlink appeared on its path")
    if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL):
        return ContextError(f"{shown} changed during the build: it was removed or replaced")
    return ContextError(f"cannot read {shown}: {(error.strerror or str(error)).lower()}")


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _display(src: str) -> str:
    """The path as Docker prints it in `stat x: file does not exist`: cleaned, relative."""
    parts: list[str] = []
    for part in src.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or "."


class _Presence:
    """Whether a path of the source root exists once the ignore rules have filtered it (lstat results cached)."""

    def __init__(self, root: RootDir, rules: IgnoreRules | None) -> None:
        self.root = root
        self.rules = rules

    def lstat(self, relpath: str) -> os.stat_result | None:
        try:
            info = self.root.lstat(relpath)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise source_error(relpath, error) from error
        if self.rules is None or not relpath:
            return info
        is_dir = stat.S_ISDIR(info.st_mode)
        if not self.rules.excludes(relpath, is_dir):
            return info
        if is_dir and self.rules.may_descend(relpath) and _has_included(self.root, relpath, self.rules):
            return IMPLIED_DIR
        return None


def _has_included(root: RootDir, reldir: str, rules: IgnoreRules) -> bool:
    for _ in _walk(root, reldir, rules):
        return True
    return False


def _resolve(presence: _Presence, src: str, follow_final: bool) -> tuple[str, os.stat_result] | None:
    """FollowSymlinkInScope for a cleaned relative path: (resolved relpath, lstat) or None when it does not exist."""
    pending = [part for part in src.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    info = presence.lstat("")
    followed = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            info = presence.lstat("/".join(resolved))
            continue
        relpath = "/".join([*resolved, part])
        info = presence.lstat(relpath)
        if info is None:
            return None
        if stat.S_ISLNK(info.st_mode) and (pending or follow_final):
            followed += 1
            if followed > _MAX_SYMLINKS:
                raise StepError(f"too many levels of symbolic links: {src}")
            try:
                target = presence.root.readlink(relpath)
            except OSError as error:
                raise source_error(relpath, error) from error
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        if pending and not stat.S_ISDIR(info.st_mode):
            return None
        resolved.append(part)
    if info is None:
        return None
    return "/".join(resolved), info


def _check_scope(src: str) -> str:
    """`src` relative to the root; a path that cleans to outside it is refused like moby's FullPath does."""
    relative = src.lstrip("/")
    depth = 0
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise ContextError(f"forbidden path outside the build context: {src} ()")
    return relative


@lru_cache(maxsize=256)
def _component_regex(pattern: str) -> re.Pattern[str] | None:
    """Go's filepath.Match for one path component, as a regex; None for a malformed pattern (which matches nothing,
    as moby ignores Match's ErrBadPattern)."""
    out: list[str] = []
    index = 0
    length = len(pattern)
    while index < length:
        char = pattern[index]
        index += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            if index >= length:
                return None
            out.append(re.escape(pattern[index]))
            index += 1
        elif char == "[":
            negated = index < length and pattern[index] == "^"
            if negated:
                index += 1
            ranges: list[str] = []
            while True:
                if index < length and pattern[index] == "]" and ranges:
                    index += 1
                    break
                low, index = _class_char(pattern, index)
                if low is None:
                    return None
                if index < length and pattern[index] == "-":
                    high, index = _class_char(pattern, index + 1)
                    if high is None:
                        return None
                    ranges.append(f"{re.escape(low)}-{re.escape(high)}")
                else:
                    ranges.append(re.escape(low))
            out.append(("[^" if negated else "[") + "".join(ranges) + "]")
        else:
            out.append(re.escape(char))
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return None


def _class_char(pattern: str, index: int) -> tuple[str | None, int]:
    if index >= len(pattern) or pattern[index] in "-]":
        return None, index
    if pattern[index] == "\\":
        index += 1
        if index >= len(pattern):
            return None, index
    return pattern[index], index + 1


def _expand(presence: _Presence, pattern: str) -> list[str]:
    """moby's copyWithWildcards: the relpaths a walk of the root (not following symlinks) visits that match."""
    parts = pattern.split("/")
    matches: list[str] = []

    def descend(reldir: str, depth: int) -> None:
        component = parts[depth]
        last = depth == len(parts) - 1
        if has_wildcards(component) or "\\" in component:
            regex = _component_regex(component)
            if regex is None:
                return
            try:
                names = sorted(name for name in presence.root.listdir(reldir) if regex.fullmatch(name))
            except (FileNotFoundError, NotADirectoryError):
                return
            except OSError as error:
                raise source_error(reldir, error) from error
        elif component in ("", ".", ".."):
            return  # a walk never visits such a name, so Go's Match never succeeds
        else:
            names = [component]
        for name in names:
            relpath = _join(reldir, name)
            info = presence.lstat(relpath)
            if info is None:
                continue
            if last:
                matches.append(relpath)
            elif stat.S_ISDIR(info.st_mode):
                descend(relpath, depth + 1)

    descend("", 0)
    return matches


def select_sources(
    source_root: RootDir,
    src: str,
    *,
    allow_wildcard: bool,
    follow_symlinks: bool,
    exclude: IgnoreRules | None,
) -> list[SelectedPath]:
    """The top-level paths `src` names under `source_root`, in Docker's order.

    A wildcard that matches nothing gives []; a plain path that does not exist raises StepError with Docker's
    wording; a path that leaves the root lexically raises ContextError."""
    presence = _Presence(source_root, exclude if exclude else None)
    if allow_wildcard and has_wildcards(src):
        pattern = src[1:] if src.startswith("/") and len(src) > 1 else src
        pattern = pattern.removeprefix("./")
        # a match is then taken as a plain path: a dangling symlink matches the walk, then fails like a missing file
        return [_select_one(presence, relpath, follow_symlinks) for relpath in _expand(presence, pattern)]
    return [_select_one(presence, _check_scope(src), follow_symlinks)]


def _select_one(presence: _Presence, relative: str, follow_symlinks: bool) -> SelectedPath:
    found = _resolve(presence, relative, follow_symlinks)
    if found is None:
        raise StepError(
            "file not found in build context or excluded by .dockerignore: "
            f"stat {_display(relative)}: file does not exist"
        )
    return SelectedPath(_display(relative).rsplit("/", 1)[-1], *found)


def _walk(root: RootDir, reldir: str, rules: IgnoreRules | None) -> Iterator[tuple[str, os.stat_result]]:
    """Everything under `reldir` (not itself), pre-order, entries by name; sockets are skipped as Docker's tar does."""
    # one frame per open directory: its entries, and the rules still to apply beneath it (None: nothing excluded)
    stack: list[tuple[str, Iterator[tuple[str, os.stat_result]], IgnoreRules | None]] = []

    def push(directory: str, rules: IgnoreRules | None) -> None:
        try:
            entries = root.scan(directory)
        except OSError as error:
            raise source_error(error.filename if isinstance(error.filename, str) else directory, error) from error
        stack.append((directory, iter(entries), rules))

    push(reldir, None if rules is None or (reldir and rules.includes_all_below(reldir)) else rules)
    while stack:
        directory, entries, rules = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        name, info = entry
        relpath = _join(directory, name)
        mode = info.st_mode
        if stat.S_ISSOCK(mode):
            continue
        is_dir = stat.S_ISDIR(mode)
        if rules is not None and rules.excludes(relpath, is_dir):
            if is_dir and rules.may_descend(relpath) and _has_included(root, relpath, rules):
                yield relpath, IMPLIED_DIR
                push(relpath, rules)
            continue
        yield relpath, info
        if is_dir:
            push(relpath, None if rules is None or rules.includes_all_below(relpath) else rules)


def _walk_filtered(
    root: RootDir, reldir: str, rules: IgnoreRules | None, keep: CopyFilter
) -> Iterator[tuple[str, os.stat_result]]:
    """`_walk`, keeping only what `keep` keeps; a directory left out is given just before the first entry beneath
    it that is kept, and not at all when there is none."""
    skip = len(reldir) + 1 if reldir else 0
    # one frame per open directory: its entries, whether it was yielded (or is waiting to be), whether it is kept
    stack: list[tuple[str, os.stat_result, Iterator[tuple[str, os.stat_result]], list[bool], bool]] = []

    def push(directory: str, info: os.stat_result, yielded: bool, kept: bool) -> None:
        try:
            entries = root.scan(directory)
        except OSError as error:
            raise source_error(error.filename if isinstance(error.filename, str) else directory, error) from error
        stack.append((directory, info, iter(entries), [yielded], kept))

    push(reldir, IMPLIED_DIR, True, False)  # the source itself is copied; its entries must be kept on their own
    while stack:
        directory, _, entries, _, parent_kept = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        name, info = entry
        relpath = _join(directory, name)
        if stat.S_ISSOCK(info.st_mode):
            continue
        is_dir = stat.S_ISDIR(info.st_mode)
        if rules is not None and rules.excludes(relpath, is_dir):
            if not (is_dir and rules.may_descend(relpath) and _has_included(root, relpath, rules)):
                continue
            info = IMPLIED_DIR
        rel = relpath[skip:]
        if keep.keeps(rel, parent_kept):
            for waiting_dir, waiting_info, _, yielded, _ in stack:
                if not yielded[0]:
                    yielded[0] = True
                    yield waiting_dir, waiting_info
            yield relpath, info
            if is_dir:
                push(relpath, info, True, True)
        elif is_dir and keep.may_hold_kept(rel):
            push(relpath, info, False, False)


def walk_tree(
    source_root: RootDir,
    selected: SelectedPath,
    exclude: IgnoreRules | None,
    keep: CopyFilter | None = None,
) -> Iterator[tuple[str, os.stat_result]]:
    """What copying `selected` reads: the path itself when it is not a directory, else everything beneath it that
    .dockerignore (`exclude`) and the COPY's own filter (`keep`) let through."""
    if not selected.is_dir:
        yield selected.relpath, selected.info
        return
    if keep is None:
        yield from _walk(source_root, selected.relpath, exclude if exclude else None)
    else:
        yield from _walk_filtered(source_root, selected.relpath, exclude if exclude else None, keep)


def select_kept(
    source_root: RootDir,
    src: str,
    *,
    allow_wildcard: bool,
    follow_symlinks: bool,
    exclude: IgnoreRules | None,
    keep: CopyFilter | None = None,
    required: str = "",
) -> list[SelectedPath]:
    """`select_sources`, without the wildcard matches `keep` leaves out; `required` (a path below `src` that must
    exist, `--parents` without wildcards) raises StepError like a missing source when it does not."""
    selected = select_sources(
        source_root, src, allow_wildcard=allow_wildcard, follow_symlinks=follow_symlinks, exclude=exclude
    )
    if required:
        presence = _Presence(source_root, exclude if exclude else None)
        _select_one(presence, _check_scope(posixpath.join(src, required)), follow_symlinks)
    if keep is not None and allow_wildcard and has_wildcards(src):
        selected = [item for item in selected if item.is_dir or keep.keeps_match(item.name)]
    return selected


def walk_selected(
    source_root: RootDir,
    src: str,
    *,
    allow_wildcard: bool,
    follow_symlinks: bool,
    exclude: IgnoreRules | None,
    keep: CopyFilter | None = None,
    required: str = "",
) -> Iterator[tuple[str, os.stat_result]]:
    """(relpath under `source_root`, lstat) of every entry a copy of `src` reads, in copy order.

    A selected directory contributes its contents, not itself (its own mode, owner and time are not copied);
    relpaths have no symlink on the way: read them through `source_root`, which refuses one that has since gained a
    symlink."""
    for selected in select_kept(
        source_root,
        src,
        allow_wildcard=allow_wildcard,
        follow_symlinks=follow_symlinks,
        exclude=exclude,
        keep=keep,
        required=required,
    ):
        yield from walk_tree(source_root, selected, exclude, keep)
