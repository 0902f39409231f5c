"""Keep a pulled or loaded layer once: its snapshot, plus a recipe that rebuilds its tar from the snapshot.

The tar's headers, padding and trailer become literal pieces; each regular file's content becomes a reference to the
file at that path of the snapshot that `unpack_layer` made from the same tar. Odd tars (an entry repeated, a file
later replaced or deleted within the same layer, content that `unpack_layer` places elsewhere) would not rebuild, so a
recipe is kept only after rebuilding from it gave the layer's exact bytes; otherwise the tar itself is kept.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from ..digest import Digest
from ..errors import BuildError
from ..store import Store
from ..store.recipes import RecipeReader, RecipeWriter
from .unpack import clean_entry_name

__all__ = ["commit_unpacked_layer", "recipe_for_tar"]

_CHUNK = 1 << 20


def _copy_literal(source: os.PathLike[str] | str, start: int, end: int, recipe: RecipeWriter) -> None:
    with open(source, "rb") as stream:
        stream.seek(start)
        remaining = end - start
        while remaining > 0:
            data = stream.read(min(_CHUNK, remaining))
            if not data:
                raise OSError("the layer tar is shorter than its entries say")
            recipe.literal(data)
            remaining -= len(data)


def recipe_for_tar(tar_path: Path, snapshot: Path, diff_id: Digest, size: int) -> bytes | None:
    """A recipe that rebuilds the tar at `tar_path` from `snapshot`, or None when it would not rebuild exactly."""
    recipe = RecipeWriter()
    position = 0
    try:
        with tarfile.open(tar_path, "r:", encoding="utf-8", errors="surrogateescape") as archive:
            for member in archive:
                if not member.isreg() or member.size == 0:
                    continue
                _copy_literal(tar_path, position, member.offset_data, recipe)
                recipe.file(clean_entry_name(member.name).encode("utf-8", "surrogateescape"), member.size)
                position = member.offset_data + member.size
        _copy_literal(tar_path, position, size, recipe)
        candidate = recipe.finish()
        with RecipeReader(candidate, snapshot, diff_id, size) as rebuilt:
            while rebuilt.read(_CHUNK):
                pass
    except (OSError, tarfile.TarError, BuildError, ValueError):
        return None
    return candidate


def commit_unpacked_layer(store: Store, tar_path: Path, diff_id: Digest, size: int, snapshot: Path) -> None:
    """Commit a layer that arrived as a tar and was unpacked into `snapshot`: as snapshot plus recipe when the tar
    rebuilds from it, else as tar and snapshot."""
    recipe = recipe_for_tar(tar_path, snapshot, diff_id, size)
    if recipe is None:
        store.layers.commit(tar_path, diff_id, size, snapshot=snapshot)
        return
    store.layers.commit_recipe(diff_id, size, recipe, snapshot)
    tar_path.unlink(missing_ok=True)
