"""`pybuild build -`: the build context, or only a Dockerfile, read from a stream, as `docker build -` reads stdin.

The stream is a context when its first bytes say gzip, bzip2 or xz, or when (undone) it starts with a tar header;
it is then extracted as ADD extracts an archive (exec/archive.py: every entry lands beneath the folder, `..` and
absolute names included, and a symlink in the archive is never followed out of it). Anything else is a Dockerfile
with an empty context.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import BuildError, ContextError
from .exec.archive import extract_archive, is_archive

__all__ = ["StdinContext", "context_from_stream"]


@dataclass(frozen=True)
class StdinContext:
    """Where the context was put, and the Dockerfile's bytes when the stream was a Dockerfile rather than a tar."""

    folder: Path
    dockerfile_text: bytes | None


def context_from_stream(stream: BinaryIO, work: Path) -> StdinContext:
    """Read all of `stream` into the empty folder `work` and make the context there."""
    received = work / "stdin"
    with open(received, "wb") as copy:
        shutil.copyfileobj(stream, copy)
    folder = work / "context"
    with open(received, "rb") as archive:
        if not is_archive(archive):
            folder.mkdir()
            return StdinContext(folder=folder, dockerfile_text=received.read_bytes())
        try:
            extract_archive(archive, folder, "stdin")
        except BuildError as error:
            raise ContextError(f"the build context on stdin is not a valid archive: {error}") from None
    received.unlink()
    return StdinContext(folder=folder, dockerfile_text=None)
