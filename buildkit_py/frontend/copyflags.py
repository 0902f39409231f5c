"""BuildKit's COPY/ADD flags and remote sources, checked as BuildKit's `dispatchCopy` checks them.

Each function takes the expanded instruction and returns what the ops need, or raises InstructionError with the
instruction's location and BuildKit's wording.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from dataclasses import dataclass

from ..context.select import has_wildcards
from ..errors import InstructionError
from ..filemode import FileMode, FileModeError, parse_file_mode
from ..gostring import go_clean, go_quote
from ..solver.ops import Chown, GitSource
from .gitref import GitRef, GitRefError, parse_git_ref
from .instructions import Add, Copy, Instruction

__all__ = [
    "HttpUrl",
    "Source",
    "add_checksum",
    "classify_source",
    "file_mode",
    "git_source",
    "names_working_dir",
    "numeric_chown",
    "split_parents",
    "url_filename",
]

_URL_PREFIXES = ("http://", "https://", "git@", "git://")
_CHECKSUM_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = frozenset("0123456789abcdef")
_MAX_COMMIT_HEX = 64  # a sha256 repository's commit id


@dataclass(frozen=True)
class HttpUrl:
    """An ADD source that is a plain http(s) URL: downloaded, never unpacked."""

    url: str


Source = str | GitRef | HttpUrl  # a path (of the build context, a stage or an image), a repository, or a URL


def _fail(instruction: Instruction, message: str) -> InstructionError:
    return InstructionError(message, instruction.location, instruction.keyword)


def classify_source(instruction: Copy | Add, source_path: str) -> Source:
    """What a COPY/ADD source names: a repository or a URL (ADD only), else a path."""
    try:
        git = parse_git_ref(source_path)
    except GitRefError as error:
        raise _fail(instruction, str(error)) from None
    if git is not None:
        if not isinstance(instruction, Add):
            raise _fail(instruction, "source can't be a git ref for COPY")
        return git
    if isinstance(instruction, Add):
        return HttpUrl(source_path) if source_path.startswith(("http://", "https://")) else source_path
    if source_path.startswith(_URL_PREFIXES):
        raise _fail(instruction, "Source can't be a URL for COPY")
    return source_path


def file_mode(instruction: Copy | Add, chmod: str) -> FileMode | None:
    """--chmod: None when not given."""
    if not chmod:
        return None
    try:
        return parse_file_mode(chmod)
    except FileModeError as error:
        raise _fail(instruction, str(error)) from None


def _is_commit_prefix(text: str) -> bool:
    return bool(text) and set(text) <= _HEX and len(text) <= _MAX_COMMIT_HEX


def add_checksum(add: Add, sources: list[Source]) -> str:
    """ADD --checksum, checked against the one remote source it pins: `algo:hex` for a URL, a commit id (or a
    prefix of one) for a repository."""
    if not add.checksum:
        return ""
    if len(sources) != 1:
        raise _fail(add, "checksum can't be specified for multiple sources")
    source = sources[0]
    if isinstance(source, GitRef):
        if not _is_commit_prefix(add.checksum):
            raise _fail(add, f"invalid checksum {go_quote(add.checksum)}: expected hex commit hash")
        return add.checksum
    if not isinstance(source, HttpUrl):
        raise _fail(add, "checksum requires HTTP(S) or Git sources")
    algorithm, colon, encoded = add.checksum.partition(":")
    if not colon:
        raise _fail(add, f"invalid checksum digest format: {go_quote(add.checksum)} (expected sha256:<hex>)")
    length = _CHECKSUM_HEX_LENGTHS.get(algorithm)
    if length is None:
        raise _fail(add, f"unsupported digest algorithm: {go_quote(algorithm)} (use sha256)")
    if len(encoded) != length or not set(encoded) <= _HEX:
        raise _fail(add, f"invalid checksum digest length: {go_quote(add.checksum)}")
    return add.checksum


def git_source(add: Add, ref: GitRef, checksum: str) -> GitSource:
    """The op that checks out `ref`; --keep-git-dir and --checksum must agree with what the URL's query says."""
    keep = ref.keep_git_dir
    if add.keep_git_dir is not None and keep is not None and add.keep_git_dir != keep:
        raise _fail(add, "inconsistent keep-git-dir configuration")
    if add.keep_git_dir is not None:
        keep = add.keep_git_dir
    if checksum and ref.checksum and checksum != ref.checksum:
        raise _fail(add, f"checksum mismatch {go_quote(checksum)} != {go_quote(ref.checksum)}")
    pinned = checksum or ref.checksum
    if pinned and not _is_commit_prefix(pinned):
        raise _fail(add, f"invalid checksum {go_quote(pinned)}: expected hex commit hash")
    # As BuildKit: .git is kept only when the whole repository is taken.
    return GitSource(
        remote=ref.remote, ref=ref.ref, subdir=ref.subdir, keep_git_dir=bool(keep) and not ref.subdir, checksum=pinned
    )


def numeric_chown(instruction: Copy | Add, chown: Chown) -> Chown:
    """--link copies onto an empty tree, which has no /etc/passwd or /etc/group: only ids (and root) can be used."""

    def numeric(name: str) -> str:
        if name == "root":
            return "0"
        if not name.isdigit():
            raise _fail(
                instruction,
                f"--link cannot look up the user or group {go_quote(name)}: its layer is made on an empty tree, "
                "without the image's /etc/passwd and /etc/group; give numeric ids, or drop --link",
            )
        return name

    return Chown(numeric(chown.user), numeric(chown.group) if chown.group else "")


def names_working_dir(dest: str) -> bool:
    """BuildKit reads "", "." and "x/." as directories ("./"), which matters when nothing is there yet."""
    return dest in ("", ".") or dest.endswith("/.")


def url_filename(url: str) -> str:
    """The name of a download, as the classic builder takes it: the last element of the URL's path; "" when the
    path ends in "/" (the response's Content-Disposition may name it then)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    if not path or path.endswith("/"):
        return ""
    return path.rsplit("/", 1)[-1]


def split_parents(source: str) -> tuple[str, str, bool]:
    """COPY --parents: (the source to copy from, the pattern of what to copy below it, whether the pattern must
    match). Parents below a `/./` pivot are kept, else every parent from the root; the pattern must match when
    neither part has wildcards, as BuildKit requires."""
    pivot, separator, pattern = source.partition("/./")
    if not separator:
        pivot, pattern = "/", source
    pattern = go_clean(posixpath.join("/", pattern)).lstrip("/")
    required = bool(pattern) and not has_wildcards(pivot) and not has_wildcards(pattern)
    return pivot, pattern, required
