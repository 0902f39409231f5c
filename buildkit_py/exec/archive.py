"""ADD's auto-extraction of a local tar archive, as Docker 20.10's classic builder does it.

moby `pkg/archive`: a file is an archive when, after undoing gzip, bzip2 or xz (told by magic bytes, never by the
name), its first tar header parses. Extraction (`chrootarchive.UntarPath`) runs chrooted in the destination folder, so
`../x` and `/x` land inside it and a symlink met on the way resolves inside it; owners, modes (setuid included) and
times come from the archive, whatever `--chown` says; an existing entry is replaced unless both are directories.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from ..errors import StepError
from ..gostring import go_clean
from ..layer.compression import detect_compression
from ..layer.tarstream import CheckedTarInfo, ForwardReader
from .copycount import CopyCounter
from .rootpath import resolve_in_root

__all__ = ["extract_archive", "is_archive"]

_WHITEOUT_META = ".wh..wh."


@contextmanager
def _open(raw: BinaryIO) -> Iterator[BinaryIO]:
    """The file `raw` from its start, decompressed when its first bytes say gzip, bzip2 or xz (moby's
    DetectCompression). `raw` stays open. Docker 20.10's ADD copies a zstd file as it is."""
    raw.seek(0)
    kind = detect_compression(raw.read(6))
    raw.seek(0)
    if kind == "gzip":
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield cast(BinaryIO, unzipped)
    elif kind == "bzip2":
        with bz2.BZ2File(raw, "rb") as unbzipped:
            yield cast(BinaryIO, unbzipped)
    elif kind == "xz":
        with lzma.LZMAFile(raw, "rb") as unxzed:
            yield cast(BinaryIO, unxzed)
    else:
        yield raw


def is_archive(raw: BinaryIO) -> bool:
    """Whether ADD would extract the open file `raw` (decided by content)."""
    try:
        with _open(raw) as stream:
            block = stream.read(tarfile.BLOCKSIZE)
        tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
    except (OSError, EOFError, lzma.LZMAError, tarfile.HeaderError, ValueError):
        return False
    return True


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _mkdir_parents(dest: Path, relparent: str) -> str:
    """The host path of `relparent` in the chroot `dest`, created (0755, root) when missing.

    Like Go's MkdirAll in the chroot: symlinks on the way are followed, but a dangling one is an error."""
    host = resolve_in_root(dest, relparent)
    if os.path.isdir(host):
        return os.fspath(host)
    if os.path.lexists(host):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), relparent)
    parts = relparent.split("/") if relparent else []
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        dangling = os.path.islink(resolve_in_root(dest, prefix, follow_final=False)) and not os.path.exists(
            resolve_in_root(dest, prefix)
        )
        if dangling:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), relparent)
    missing: list[Path] = []
    probe = host
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        os.lchown(directory, 0, 0)
        os.chmod(directory, 0o755)
    return os.fspath(host)


def extract_archive(archive: BinaryIO, dest: Path, display: str, counter: CopyCounter | None = None) -> None:
    """Extract the open archive file `archive` into the folder `dest` (created if missing, 0755 root); `counter`
    counts the entries and bytes extracted."""
    try:
        if not os.path.lexists(dest):
            _mkdir_parents(dest, "")
        elif not os.path.isdir(dest):
            raise NotADirectoryError(f"mkdir {display}: not a directory")
        with (
            _open(archive) as stream,
            tarfile.open(
                fileobj=cast(BinaryIO, ForwardReader(stream)),
                mode="r:",
                errors="surrogateescape",
                tarinfo=CheckedTarInfo,
            ) as tar,
        ):
            directories: list[tuple[str, tarfile.TarInfo]] = []
            for member in tar:
                relpath = go_clean("/" + member.name).lstrip("/")
                if not relpath or relpath.startswith(_WHITEOUT_META):
                    continue
                parent, _, base = relpath.rpartition("/")
                path = os.path.join(_mkdir_parents(dest, parent), base)
                _extract_member(tar, member, path, dest)
                if member.isdir():
                    directories.append((relpath, member))
                elif counter is not None:
                    counter.add_bytes(member.size if member.isreg() else 0)
                    counter.add_file()
            for relpath, member in directories:
                # Resolved again: a later entry may have replaced a parent with a symlink that leads elsewhere.
                path = os.fspath(resolve_in_root(dest, relpath, follow_final=False))
                if os.path.isdir(path) and not os.path.islink(path):
                    mtime = int(member.mtime * 1_000_000_000)
                    os.utime(path, ns=(mtime, mtime), follow_symlinks=False)
    except (OSError, tarfile.TarError, EOFError, lzma.LZMAError) as error:
        detail = str(error)
        if isinstance(error, OSError) and error.strerror:
            detail = f"{error.filename}: {error.strerror.lower()}" if error.filename else error.strerror.lower()
        raise StepError(f"failed to copy files: Error processing tar file({display}): {detail}") from error


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, dest: Path) -> None:
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None and not (stat.S_ISDIR(existing.st_mode) and member.isdir()):
        _remove(path)
    if member.isdir():
        if existing is None:
            os.mkdir(path, 0o700)
    elif member.isreg():
        source = tar.extractfile(member)
        assert source is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    elif member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        parent, _, base = go_clean("/" + member.linkname).lstrip("/").rpartition("/")
        os.link(os.path.join(resolve_in_root(dest, parent), base), path, follow_symlinks=False)
    elif member.ischr() or member.isblk() or member.isfifo():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
    else:
        return  # other types (GNU sparse continuations, ...) are skipped as Go's tar reader does
    os.lchown(path, member.uid, member.gid)
    if not member.issym() and not (member.islnk() and os.path.islink(path)):
        os.chmod(path, stat.S_IMODE(member.mode))
    if not member.isdir():
        mtime = int(member.mtime * 1_000_000_000)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)
