"""Writing a file a user named on the command line (`save -o`, `--iidfile`, `--html`, `-o type=tar,dest=`).

A regular file, or a name that does not exist yet, is written atomically: a temp file in the same folder, fsync'd,
then renamed over the name, so a reader never sees half a file. Anything else that exists is written in place and
never replaced: a character device (`/dev/null`, `/dev/stdout`), a fifo, a socket (connected to). A folder, or a name
whose folder does not exist, is an OutputError, found by `check_output_path` before any work is done.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from ..errors import OutputError

__all__ = ["check_output_path", "open_output", "write_output"]


def _describe(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def check_output_path(path: str | Path, what: str = "output file") -> None:
    """Raise OutputError now if `path` could not be written later: it is a folder, or its folder is missing."""
    target = Path(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:  # ENOTDIR: a parent is a file; ELOOP; EACCES
        raise OutputError(f"cannot write {what} {str(target)!r}: {_describe(error)}") from None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise OutputError(f"cannot write {what} {str(target)!r}: it is a directory")
        return
    folder = target.parent
    if not folder.is_dir():
        reason = "is not a directory" if folder.exists() else "does not exist"
        raise OutputError(f"cannot write {what} {str(target)!r}: the folder {str(folder)!r} {reason}")


@contextmanager
def open_output(path: str | Path, what: str = "output file") -> Iterator[BinaryIO]:
    """A binary stream for `path`, written as the module docstring says; an OSError becomes an OutputError."""
    check_output_path(path, what)
    target = Path(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    try:
        if mode is not None and stat.S_ISSOCK(mode):
            import socket  # only for the rare output that is a socket

            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(str(target))
                with connection.makefile("wb") as stream:
                    yield cast(BinaryIO, stream)
            return
        if mode is not None and not stat.S_ISREG(mode):
            with open(target, "wb") as stream:
                yield stream
            return
        with _atomic(Path(os.path.realpath(target))) as stream:
            yield stream
    except OSError as error:
        if error.filename is not None and Path(error.filename).parent != Path(os.path.realpath(target)).parent:
            raise  # about some other file the caller read while writing this one
        raise OutputError(f"cannot write {what} {str(target)!r}: {_describe(error)}") from None


@contextmanager
def _atomic(target: Path) -> Iterator[BinaryIO]:
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(partial, "xb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_output(path: str | Path, data: bytes | str, what: str = "output file") -> None:
    """Write all of `data` (text is UTF-8) to `path` as `open_output` does."""
    with open_output(path, what) as stream:
        stream.write(data.encode() if isinstance(data, str) else data)
