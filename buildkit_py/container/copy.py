"""`pybuild cp`: files between a container and the host, or a tar stream on stdin/stdout, as Docker 20.10 does it.

Every copy goes through a tar stream (archive.py), as Docker's does between its client and its daemon: the source is
written as entries named for the destination, and extracted into the destination's folder. The container's side is
hostile: paths in it are resolved as the container would (symlinks inside its root) and every file is reached
through descriptors beneath the root, so a swap made while we copy fails instead of leading out of it.

Where the copy lands, as Docker decides it: into an existing folder under the source's name (its content for
`SRC/.`); over an existing file; else under the destination's own name in its parent folder. Owners: a copy into a
container keeps the source's uid and gid (with `-a`, the container's configured user, as Docker's daemon does); a
copy to the host is owned by whoever runs `cp`, or keeps the container's owners with `-a`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO

from ..errors import ContainerError
from ..exec.rootpath import resolve_in_root
from ..exec.users import resolve_user
from ..store.containers import ContainerRow
from .archive import Owner, SourceEntry, extract_archive, source_entry, write_archive
from .paths import open_in_root
from .spec import ContainerSpec

__all__ = [
    "configured_owner",
    "copy_from_container",
    "copy_into_container",
    "extract_into_container",
    "stream_from_container",
]


def _container_source(root: Path, source: str, follow_link: bool, container: str) -> SourceEntry:
    try:
        return source_entry(root, source or "/", follow_link)
    except OSError:
        raise ContainerError(f"Could not find the file {source} in container {container}") from None


def _archive_name(source: str, entry: SourceEntry, follow_link: bool) -> str:
    """Docker's name for the top entry: the source's base name (with `-L`, the name of what its symlink leads to),
    `.` for a folder's content, `/` for the root."""
    if source.endswith("/.") and entry.is_dir:
        return "."
    if follow_link:
        return entry.name or "/"
    return os.path.basename(os.path.normpath(source).rstrip("/")) or "/"


def stream_from_container(
    root: Path, source: str, out: BinaryIO, follow_link: bool, container: str, opaque: frozenset[str] = frozenset()
) -> None:
    """`cp CONTAINER:SOURCE -`: a tar of the source on `out` (folders in `opaque` without their content)."""
    entry = _container_source(root, source, follow_link, container)
    write_archive(root, entry, out, _archive_name(source, entry, follow_link), opaque)


def _piped(
    root: Path,
    entry: SourceEntry,
    name: str,
    dest_root: Path,
    folder: str,
    owner: Owner | None,
    opaque: frozenset[str] = frozenset(),
) -> None:
    """Write the source's tar on one end of a pipe (a thread) while extracting it from the other into `folder` of
    the tree `dest_root`."""
    read_fd, write_fd = os.pipe()
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            with open(write_fd, "wb") as out:
                write_archive(root, entry, out, name, opaque)
        except BaseException as error:  # noqa: BLE001 - reported by the consumer's thread
            failures.append(error)

    writer = threading.Thread(target=produce, name="cp-tar")
    writer.start()
    try:
        with open(read_fd, "rb") as stream:
            extract_archive(dest_root, folder, stream, owner)
    finally:
        writer.join()
    if failures:
        raise ContainerError(f"cannot read {name}: {failures[0]}") from None


def copy_from_container(
    root: Path,
    source: str,
    destination: Path,
    follow_link: bool,
    archive: bool,
    container: str,
    opaque: frozenset[str] = frozenset(),
) -> None:
    """`cp CONTAINER:SOURCE DESTINATION` (a host path; folders in `opaque` are copied without their content)."""
    entry = _container_source(root, source, follow_link, container)
    if destination.is_dir():
        folder, name = destination, _archive_name(source, entry, follow_link)
    elif os.path.lexists(destination) and entry.is_dir:
        raise ContainerError("cannot copy a directory to a file")
    elif not os.path.lexists(destination) and str(destination).endswith("/"):
        raise ContainerError(f"destination directory {destination} does not exist")
    else:
        folder, name = destination.parent, destination.name
    if not folder.is_dir():
        raise ContainerError(f"cannot copy to {destination}: its folder does not exist")
    owner = None if archive else Owner(os.getuid(), os.getgid())
    _piped(root, entry, name, folder, "/", owner, opaque)


def _container_folder(root: Path, path: str, container: str) -> str:
    """The container's folder `path`, resolved inside its root: ContainerError when there is nothing there,
    NotADirectoryError when it is not a folder."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, root, path, make=None)
    except OSError:
        raise ContainerError(f"Could not find the file {path} in container {container}") from None
    finally:
        os.close(root_fd)
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            raise NotADirectoryError(path)
    finally:
        os.close(fd)
    return "/" + resolve_in_root(root, path).relative_to(root).as_posix()


def copy_into_container(
    root: Path, source: Path, destination: str, follow_link: bool, owner: Owner | None, container: str
) -> None:
    """`cp SOURCE CONTAINER:DESTINATION` (SOURCE a host path)."""
    local = os.path.join(os.getcwd(), source)  # as given: a trailing `/` or `/.` counts
    if not os.path.lexists(local):
        raise ContainerError(f"lstat {source}: no such file or directory")
    entry = source_entry(Path("/"), local, follow_link)
    destination = destination or "/"
    renamed = None
    try:
        folder = _container_folder(root, destination, container)
    except NotADirectoryError:
        if entry.is_dir:
            raise ContainerError("cannot copy a directory to a file") from None
        renamed = os.path.basename(destination.rstrip("/"))
    except ContainerError:
        renamed = os.path.basename(destination.rstrip("/"))
    if renamed is not None:
        folder = _container_folder(root, os.path.dirname(destination.rstrip("/")) or "/", container)
    name = renamed or _archive_name(str(source), entry, follow_link)
    _piped(Path("/"), entry, name, root, folder, owner)


def extract_into_container(root: Path, stream: BinaryIO, destination: str, owner: Owner | None, container: str) -> None:
    """`cp - CONTAINER:DESTINATION`: a tar from `stream`, extracted into the container's folder."""
    try:
        folder = _container_folder(root, destination or "/", container)
    except (ContainerError, NotADirectoryError):
        raise ContainerError(f'destination "{container}:{destination}" must be a directory') from None
    extract_archive(root, folder, stream, owner)


def configured_owner(root: Path, row: ContainerRow) -> Owner | None:
    """`cp -a` into a container: Docker's daemon gives every entry the container's configured user (its uid and
    primary gid, looked up in the container's /etc/passwd), and keeps the archive's owners when there is none."""
    user = ContainerSpec.from_json(row.spec).user
    if not user:
        return None
    resolved = resolve_user(root, user)
    return Owner(resolved.uid, resolved.gid)
