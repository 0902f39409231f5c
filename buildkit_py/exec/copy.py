"""COPY and ADD from a local tree, with the results of Docker 20.10's classic builder (moby `builder/dockerfile/copy.go`).

What the classic builder does, and so what this does:
- A directory source copies its contents; the destination folder is created 0755 (its parents root-owned, itself
  owned like the copied files); an existing one keeps its own mode and owner. Subdirectories met on the way take the
  source's mode, owner and time, merging with what is there; any other existing entry is replaced, never followed.
- A file goes to `dest/<name>` when dest ends with "/" or is a directory, else to dest itself; missing parents are
  created 0755 and owned like the file. The top-level source is followed when it is a symlink (the name stays the
  link's), symlinks below it are copied as symlinks, hard links inside one source directory stay hard links.
- Modes are kept; mtimes are kept, truncated to the second (Docker's tar headers), and atime is set to the mtime.
- Ownership: with `chown` every copied entry goes to that uid:gid, and, as the kernel does on a chown after the
  chmod, a regular file loses setuid, and setgid when it is group-executable. Without `chown` owners (and setuid,
  and the file capability) are kept: the frontend passes `Chown("0", "0")` for the build context, as Docker's
  builder chowns context files to root, and nothing for `COPY --from`, which Docker copies with their owners.
- The destination path is resolved inside the root (`resolve_in_root`), so an image symlink such as /app -> /srv is
  followed, to /srv of the image.

BuildKit's flags, which the classic builder refuses, follow BuildKit (fsutil's copy):
- `--chmod` (octal, or symbolic applied to each entry's own mode) is set on every copied file and directory (not on
  symlinks), after the chown and without dropping set-id bits; an octal mode also goes to the directories the copy
  creates on the way to the destination.
- `--exclude` and `--parents` filter what is copied from beneath each source (context/select.py `CopyFilter`).

The source tree is hostile and may change while we copy: it is held open as one `RootDir` from selection to the last
file, and every read of it (lstat, readlink, content, the capability xattr) goes through a descriptor beneath it, so a
directory swapped for a symlink halfway fails the step (ContextError) instead of copying from outside the tree.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..context.dockerignore import IgnoreRules
from ..context.select import CopyFilter, SelectedPath, is_implied, select_kept, source_error, walk_tree
from ..errors import BuildError, ContextError, ExecError, StepError
from ..filemode import FileMode, parse_file_mode
from ..fs.beneath import FolderFiles, RootDir
from ..solver.ops import Chown, CopyAction
from .archive import extract_archive, is_archive
from .copycount import CopyCounter
from .rootpath import container_path, resolve_in_root
from .users import resolve_chown

__all__ = ["copy_action", "mkdir_all", "resolve_owner"]

_CAPABILITY = "security.capability"
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM}


def resolve_owner(dest_root: Path, chown: Chown | None) -> tuple[int, int] | None:
    """uid:gid for `--chown`, looked up in the destination's /etc/passwd and /etc/group."""
    if chown is None:
        return None

    try:
        return resolve_chown(dest_root, chown.user, chown.group)
    except ExecError as error:
        raise StepError(str(error)) from None


def mkdir_all(path: str, mode: int, owner: tuple[int, int]) -> list[str]:
    """MkdirAllAndChownNew: create `path` and its missing parents with `mode` and `owner`; returns what it created.

    `path` must have no symlink among its existing components (it comes from resolve_in_root)."""
    missing: list[str] = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), missing[-1] if missing else probe)
    for directory in reversed(missing):
        os.mkdir(directory, 0o700)
        os.lchown(directory, *owner)
        os.chmod(directory, mode)
    return missing


def _remove(path: str, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_fast_copy = {"copy_file_range": True}  # cleared after the first refusal: into overlayfs it fails for every file
_COPY_CHUNK = 8 << 20  # small enough that the byte count of a large file moves while it is copied


def _copy_content(source_fd: int, target_fd: int, counter: CopyCounter | None = None) -> None:
    add = counter.add_bytes if counter is not None else (lambda count: None)
    copied = 0
    if _fast_copy["copy_file_range"]:
        try:
            while chunk := os.copy_file_range(source_fd, target_fd, _COPY_CHUNK):
                copied += chunk
                add(chunk)
            return
        except OSError as error:
            if copied or error.errno not in _FALLBACK_ERRNOS:
                raise
            _fast_copy["copy_file_range"] = False
    try:
        while chunk := os.sendfile(target_fd, source_fd, None, _COPY_CHUNK):
            copied += chunk
            add(chunk)
        return
    except OSError as error:
        if copied or error.errno not in _FALLBACK_ERRNOS:
            raise
    while data := os.read(source_fd, 1 << 20):
        view = memoryview(data)
        while view:
            view = view[os.write(target_fd, view) :]
        add(len(data))


def _file_mode(action: CopyAction) -> FileMode | None:
    """The action's --chmod; the frontend checked it, so a bad one here is a step error, not a crash."""
    if action.chmod is not None:
        return FileMode(f"{action.chmod:o}", action.chmod)
    if not action.chmod_symbolic:
        return None
    try:
        return parse_file_mode(action.chmod_symbolic)
    except ValueError as error:
        raise StepError(str(error)) from None


@dataclass
class _Copier:
    source_root: RootDir
    identity: tuple[int, int] | None
    chmod: FileMode | None
    rules: IgnoreRules | None
    keep: CopyFilter | None = None
    counter: CopyCounter | None = None
    directories: list[tuple[str, os.stat_result]] = field(default_factory=list)
    # Directories this copy of one source created: nothing was in them before, so nothing is in the way of an entry.
    fresh: set[str] = field(default_factory=set)
    files: FolderFiles | None = None

    @property
    def new_dir_mode(self) -> int:
        """The mode of a directory the copy creates on the way to its destination: an octal --chmod, else 0755."""
        return self.chmod.octal if self.chmod is not None and self.chmod.octal is not None else 0o755

    def _mode(self, info: os.stat_result) -> int:
        if self.chmod is not None:
            return self.chmod.apply(info.st_mode, stat.S_ISDIR(info.st_mode))
        mode = stat.S_IMODE(info.st_mode)
        if self.identity is not None and not stat.S_ISDIR(info.st_mode):
            mode &= ~stat.S_ISUID
            if mode & stat.S_IXGRP:
                mode &= ~stat.S_ISGID
        return mode

    def _owner(self, info: os.stat_result) -> tuple[int, int]:
        return self.identity if self.identity is not None else (info.st_uid, info.st_gid)

    def open_source(self, relpath: str) -> int:
        """A read-only descriptor of the regular file `relpath` of the source tree."""
        if self.files is None:
            self.files = FolderFiles(self.source_root)
        try:
            return self.files.open_file(relpath)
        except OSError as error:
            raise source_error(relpath, error) from error

    def _read_link(self, relpath: str) -> str:
        try:
            return self.source_root.readlink(relpath)
        except OSError as error:
            raise source_error(relpath, error) from error

    def place(self, relpath: str, target: str, info: os.stat_result, links: dict[tuple[int, int], str]) -> None:
        """Create `target` as a copy of source entry `relpath` (lstat `info`), replacing what is in the way."""
        mode = info.st_mode
        is_dir = stat.S_ISDIR(mode)
        existing: os.stat_result | None = None
        if os.path.dirname(target) not in self.fresh:
            try:
                existing = os.lstat(target)
            except FileNotFoundError:
                pass
        if existing is not None and not (is_dir and stat.S_ISDIR(existing.st_mode)):
            _remove(target, existing)
            existing = None
        if is_dir:
            if existing is None:
                os.mkdir(target, 0o700)
                self.fresh.add(target)
            os.lchown(target, *self._owner(info))
            os.chmod(target, self._mode(info))
            if not is_implied(info):
                self.directories.append((target, info))
            return
        if self.counter is not None:
            self.counter.add_file()
        seconds = info.st_mtime_ns // 1_000_000_000 * 1_000_000_000
        if stat.S_ISREG(mode):
            if info.st_nlink > 1:
                first = links.get((info.st_dev, info.st_ino))
                if first is not None:
                    os.link(first, target, follow_symlinks=False)
                    return
                links[(info.st_dev, info.st_ino)] = target
            source_fd = self.open_source(relpath)
            try:
                owner, file_mode = self._owner(info), self._mode(info)
                # Created with its final mode unless that has set-id or sticky bits (set last, after the chown that
                # would clear them); the umask, a setgid folder or a default ACL may still change the mode or group
                # the file gets, so what it got is checked, and only what differs is set: each set is a metadata
                # write through the overlay, for every file of the copy.
                plain = not file_mode & _SPECIAL_BITS
                fd = os.open(target, _CREATE_FLAGS, file_mode if plain else 0o600)
                try:
                    _copy_content(source_fd, fd, self.counter)
                    created = os.fstat(fd)
                    if (created.st_uid, created.st_gid) != owner:
                        os.fchown(fd, *owner)
                    if self.identity is None:
                        self._copy_capability(source_fd, fd)
                    if not plain or stat.S_IMODE(created.st_mode) != file_mode:
                        os.fchmod(fd, file_mode)
                    os.utime(fd, ns=(seconds, seconds))
                finally:
                    os.close(fd)
            finally:
                os.close(source_fd)
            return
        if stat.S_ISLNK(mode):
            os.symlink(self._read_link(relpath), target)
            os.lchown(target, *self._owner(info))
            os.utime(target, ns=(seconds, seconds), follow_symlinks=False)
            return
        os.mknod(target, stat.S_IFMT(mode) | 0o600, info.st_rdev)  # fifo or device node
        os.lchown(target, *self._owner(info))
        os.chmod(target, self._mode(info))
        os.utime(target, ns=(seconds, seconds))

    @staticmethod
    def _copy_capability(source_fd: int, fd: int) -> None:
        try:
            value = os.getxattr(source_fd, _CAPABILITY)
        except OSError:
            return
        os.setxattr(fd, _CAPABILITY, value)

    def copy_tree(self, item: SelectedPath, dest: str, dest_is_new: bool = False) -> None:
        """The contents of directory `item` into the existing directory `dest` (`dest_is_new`: made empty for it)."""
        skip = len(item.relpath) + 1 if item.relpath else 0
        links: dict[tuple[int, int], str] = {}
        # A source's names are unique within each folder, but a second source may write into the same folders.
        self.fresh = {dest} if dest_is_new else set()
        try:
            for relpath, info in walk_tree(self.source_root, item, self.rules, self.keep):
                self.place(relpath, os.path.join(dest, relpath[skip:]), info, links)
        finally:
            self.fresh = set()

    def finish(self) -> None:
        """Directory times last: creating entries in a directory changes its mtime."""
        for target, info in reversed(self.directories):
            seconds = info.st_mtime_ns // 1_000_000_000 * 1_000_000_000
            os.utime(target, ns=(seconds, seconds), follow_symlinks=False)
        self.directories.clear()

    def close(self) -> None:
        if self.files is not None:
            self.files.close()


def _keyword(action: CopyAction) -> str:
    return "ADD" if action.attempt_unpack else "COPY"


def _select(
    source_root: RootDir, action: CopyAction, rules: IgnoreRules | None, keep: CopyFilter | None
) -> list[SelectedPath]:
    keyword = _keyword(action)
    try:
        return select_kept(
            source_root,
            action.src,
            allow_wildcard=action.allow_wildcard,
            follow_symlinks=action.follow_symlinks,
            exclude=rules,
            keep=keep,
            required=action.include_pattern if action.required else "",
        )
    except StepError as error:
        raise StepError(f"{keyword} failed: {error.message}") from None
    except ContextError as error:
        raise ContextError(f"{keyword} failed: {error}") from None


def copy_action(dest_root: Path, source_root: Path, action: CopyAction, counter: CopyCounter | None = None) -> None:
    """Apply one CopyAction: `action.src` of `source_root` onto `dest_root`; `counter` counts what is placed."""
    try:
        root = RootDir(source_root)
    except OSError as error:
        raise ContextError(f"{_keyword(action)} failed: cannot open {source_root}: {error.strerror}") from error
    with root:
        _copy_from(dest_root, root, action, counter)


def _copy_from(dest_root: Path, source_root: RootDir, action: CopyAction, counter: CopyCounter | None) -> None:
    rules = IgnoreRules(action.exclude) if action.exclude else None
    keep = CopyFilter.of(action.exclude_patterns, action.include_pattern)
    selected = _select(source_root, action, rules, keep)
    into_dir = action.dest_is_dir or action.dest.endswith("/")
    keyword = _keyword(action)
    if not selected:
        if action.allow_empty_wildcard or keep is not None:  # everything a wildcard matched may be --excluded
            return
        raise StepError(f"{keyword} failed: no source files were specified")
    if len(selected) > 1 and not into_dir:
        raise StepError(
            f"When using {keyword} with more than one source file, the destination must be a directory and end with a /"
        )
    identity = resolve_owner(dest_root, action.chown)
    try:
        dest = os.fspath(resolve_in_root(dest_root, action.dest))
    except NotADirectoryError:
        raise StepError(f"failed to copy files: lstat {action.dest.rstrip('/') or '/'}: not a directory") from None
    copier = _Copier(source_root, identity, _file_mode(action), rules, keep, counter)
    stage = "failed to copy files"
    try:
        if not action.create_dest_path:
            parent = dest if into_dir else os.path.dirname(dest)
            if not os.path.isdir(parent):
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), parent)
        for item in selected:
            if item.is_dir:
                target = dest
                if not action.dir_contents_only and (into_dir or os.path.isdir(dest)):
                    target = os.path.join(dest, item.name)
                stage = "failed to copy files: failed to copy directory"
                existed = os.path.isdir(target)
                if os.path.lexists(target) and not existed:
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), target)
                made = mkdir_all(target, copier.new_dir_mode, (0, 0))
                if identity is not None and not existed:
                    os.lchown(target, *identity)
                copier.copy_tree(item, target, dest_is_new=bool(made) and made[0] == target)
                continue
            if action.attempt_unpack and stat.S_ISREG(item.info.st_mode):
                with os.fdopen(copier.open_source(item.relpath), "rb") as archive:
                    if is_archive(archive):
                        extract_archive(archive, Path(dest), action.dest, counter)
                        continue
            target = os.path.join(dest, item.name) if into_dir or os.path.isdir(dest) else dest
            stage = "failed to copy files: failed to create new directory"
            mkdir_all(os.path.dirname(target), copier.new_dir_mode, identity if identity is not None else (0, 0))
            stage = "failed to copy files"
            copier.place(item.relpath, target, item.info, {})
        copier.finish()
    except ContextError as error:
        raise ContextError(f"{keyword} failed: {error}") from error
    except BuildError:
        raise
    except OSError as error:
        where = error.filename if isinstance(error.filename, str) else dest
        try:
            shown = container_path(dest_root, Path(where))
        except ValueError:
            shown = where
        operation = "mkdir " if error.errno == errno.ENOTDIR else ""
        reason = (error.strerror or str(error)).lower()  # Go's wording: "not a directory"
        raise StepError(f"{stage}: {operation}{shown}: {reason}") from error
    finally:
        copier.close()
