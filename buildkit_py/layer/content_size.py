"""A layer's content size, as Docker measures an image (`docker images` SIZE, the layer sizes it adds up).

Docker's overlay2 driver sizes a layer by walking its unpacked diff: the lstat size of every entry that is not a
directory, an inode met twice (a hard link) counted once. In the layer's tar that is: the size of each regular file,
the length of each symlink's target, nothing for a hard link (its first name carries the data), a directory, a
device or a whiteout. Tar headers and padding are not content, which is why the tar is larger.
"""

from __future__ import annotations

import os
import tarfile
from typing import BinaryIO

from ..errors import LayerError

__all__ = ["layer_content_size"]


def layer_content_size(stream: BinaryIO) -> int:
    """The content size of the uncompressed layer tar `stream`, read to its end."""
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape") as archive:
            for member in archive:
                if member.isreg():
                    total += member.size
                elif member.issym():
                    total += len(os.fsencode(member.linkname))
    except (tarfile.TarError, EOFError) as error:
        raise LayerError(f"cannot read a layer to size it: {error}") from None
    return total
