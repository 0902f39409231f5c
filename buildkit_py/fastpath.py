"""The no-op rebuild, answered without the build machinery.

Most builds in a developer's loop and in CI change nothing. Such a build needs no parser, solver or sandbox: it
needs to know that nothing it reads changed. So every build records a fingerprint of everything it reads, taken
*before* it reads it:

- the Dockerfile's bytes and the ignore file's, and the build's options (target, build args, network, labels, ...);
- the metadata of every file of the context a COPY could see (path, type, mode, owner, size, inode, mtime, ctime,
  link target): a write changes ctime, so a changed byte always changes the fingerprint, as does a new, removed or
  renamed file, a chmod or a chown;
- which image each base image reference named.

A later build whose fingerprint is the same, whose base image references still name the same images, and whose
image is still in the store whole, is that image: it is tagged and reported, and nothing else is loaded. A build
that could depend on anything else (a download, a git checkout, a named context, an imported cache, `--pull`,
`--no-cache`) never takes this path. A context changed while a build runs leaves a fingerprint that no longer
matches, so the next build goes the whole way.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from . import __version__
from .context.dockerignore import IgnoreRules, load_ignore_rules
from .digest import Digest
from .options import BuildOptions, read_dockerfile
from .store.fingerprints import BuildFingerprint

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Fingerprint", "NoopHit", "Remembered", "eligible", "fingerprint", "lookup", "remember"]

VERSION = 1


def eligible(options: BuildOptions) -> bool:
    """Whether a build with these options depends only on what a fingerprint covers."""
    return not (
        options.no_cache
        or options.no_cache_stages
        or options.pull
        or options.build_contexts
        or options.cache_from
        or options.cache_to
    )


def _project(context: Path, dockerfile: Path | None, target: str | None) -> str:
    """The build a fingerprint belongs to: a context, a Dockerfile (stdin is one too), a target."""
    return "\0".join((str(context), str(dockerfile) if dockerfile is not None else "-", target or ""))


def _walk(root: str, rules: IgnoreRules) -> Iterator[tuple[str, os.stat_result, str]]:
    """(relpath, lstat, link target) of every entry of the context that the ignore rules let a COPY see, in a
    stable order; a folder the rules exclude is entered only when an exception could bring something back."""
    stack: list[tuple[str, IgnoreRules | None]] = [("", rules if rules.patterns else None)]
    while stack:
        reldir, folder_rules = stack.pop()
        try:
            with os.scandir(os.path.join(root, reldir) if reldir else root) as entries:
                found = sorted(entries, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        descend: list[tuple[str, IgnoreRules | None]] = []
        for entry in found:
            relpath = f"{reldir}/{entry.name}" if reldir else entry.name
            info = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(info.st_mode)
            if folder_rules is not None and folder_rules.excludes(relpath, is_dir):
                if is_dir and folder_rules.may_descend(relpath):
                    descend.append((relpath, folder_rules))
                continue
            target = os.readlink(entry.path) if stat.S_ISLNK(info.st_mode) else ""
            yield relpath, info, target
            if is_dir:
                # Beneath a folder no pattern can reach, nothing is matched any more.
                settled = folder_rules is None or folder_rules.includes_all_below(relpath)
                descend.append((relpath, None if settled else folder_rules))
        stack.extend(reversed(descend))


def _options_digest(options: BuildOptions) -> dict[str, Any]:
    return {
        "target": options.target,
        "build_args": sorted(options.build_args.items()),
        "network": options.network,
        "allow": sorted(options.allow),
        "labels": sorted(options.labels.items()),
        "add_hosts": [list(pair) for pair in options.add_hosts],
        "platform": options.platform,
        "secrets": sorted(str(getattr(secret, "id", secret)) for secret in options.secrets),
        "ssh": sorted(str(getattr(agent, "id", agent)) for agent in options.ssh),
    }


@dataclass(frozen=True)
class Fingerprint:
    project: str
    digest: str


# The fingerprint the CLI took to look for a no-op, kept for the build that follows a miss, which would take it again.
_taken: tuple[BuildOptions, Fingerprint | None] | None = None


def fingerprint(options: BuildOptions, *, keep: bool = False) -> Fingerprint | None:
    """The fingerprint of what a build with `options` would read, now; None when the build is not eligible or its
    inputs cannot be read (the full build then says what is wrong).

    With `keep`, the next call for this very `options` object gets the same fingerprint back instead of a new walk
    of the context, once: the CLI looks for a no-op, misses, and builds. Taken earlier, it can only be older than
    what the build reads, so a change made in between makes the next build a miss, never a stale hit."""
    global _taken
    if _taken is not None and _taken[0] is options:
        found = _taken[1]
        _taken = None
        return found
    _taken = None
    found = _fingerprint(options)
    if keep:
        _taken = (options, found)
    return found


def _fingerprint(options: BuildOptions) -> Fingerprint | None:
    if not eligible(options):
        return None

    context = options.context.resolve()
    try:
        data, dockerfile_path, _ = read_dockerfile(context, options.dockerfile, options.dockerfile_text)
        rules = load_ignore_rules(context, dockerfile_path)
    except Exception:  # noqa: BLE001 - any problem is the full build's to report, with its own words
        return None
    hasher = blake3.blake3()
    header = {"version": [VERSION, __version__], "options": _options_digest(options), "ignore": list(rules.patterns)}
    hasher.update(json.dumps(header, sort_keys=True).encode())
    hasher.update(blake3.blake3(data).digest())
    if dockerfile_path is not None:
        hasher.update(os.fsencode(str(dockerfile_path)) + b"\0")
    for relpath, info, target in _walk(str(context), rules):
        if stat.S_ISDIR(info.st_mode):
            # A folder's times change when an ignored file comes or goes; no cache key reads them.
            record = f"{relpath}\0{info.st_mode}\0{info.st_uid}\0{info.st_gid}\n"
        else:
            record = (
                f"{relpath}\0{info.st_mode}\0{info.st_uid}\0{info.st_gid}\0{info.st_size}\0{info.st_ino}\0"
                f"{info.st_mtime_ns}\0{info.st_ctime_ns}\0{target}\n"
            )
        hasher.update(record.encode("utf-8", "surrogateescape"))
    return Fingerprint(_project(context, dockerfile_path, options.target), hasher.hexdigest())


@dataclass(frozen=True)
class Remembered:
    """What a build made and what it read besides its context, to be recorded with its fingerprint."""

    image_id: str
    bases: Sequence[tuple[str, str]]  # (reference as written after expansion, image id it named)
    steps: Sequence[tuple[int, str, str]]  # (number, name, op digest) as the progress showed them
    messages: Sequence[str]  # warnings the build printed (lint, unused build args), shown again


def remember(store: Store, found: Fingerprint, made: Remembered) -> None:
    record = {
        "image_id": made.image_id,
        "bases": [list(base) for base in made.bases],
        "steps": [list(step) for step in made.steps],
        "messages": list(made.messages),
    }
    store.fingerprints.put(BuildFingerprint(found.project, found.digest, json.dumps(record)))


@dataclass(frozen=True)
class NoopHit:
    image_id: str
    steps: tuple[tuple[int, str, str], ...]
    messages: tuple[str, ...]


def lookup(store: Store, found: Fingerprint) -> NoopHit | None:
    """The image of the last build, when `found` is its fingerprint and all it stood on is still as it was."""
    entry = store.fingerprints.get(found.project)
    if entry is None or entry.fingerprint != found.digest:
        return None
    try:
        record = json.loads(entry.record)
        image_id = Digest.parse(record["image_id"])
        for ref, base_id in record["bases"]:
            if "@" in ref:
                if not store.images.has(Digest.parse(base_id)):
                    return None
            elif str(store.resolve(ref)) != base_id:
                return None
        if not store.images.has(image_id) or store.damage.get(image_id) is not None:
            return None
        chain = store.images.chain(image_id)
        if not store.layers.all_present(chain):
            return None
        if any(store.damage.get(diff_id) is not None for diff_id in chain):
            return None
        steps = tuple((int(number), str(name), str(op)) for number, name, op in record["steps"])
        return NoopHit(str(image_id), steps, tuple(str(message) for message in record["messages"]))
    except Exception:  # noqa: BLE001 - a record we cannot follow is a miss: the full build decides
        return None
