"""`pybuild commit`: a container's read-write layer becomes a new layer on top of its image.

The upper dir is written as a layer tar with Docker's whiteouts (layer/generate.py); the new image's config is the
container's (its command, environment, working dir, user, labels), with `-c` changes applied by the build's own
dispatchers (frontend/changes.py), and a history entry carrying the author and the message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from ..digest import Digest
from ..errors import BuildError
from ..frontend.changes import apply_changes
from ..image.config import HistoryEntry, ImageConfig, rfc3339
from ..image.stored import image_config, put_image
from ..layer.generate import write_layer_tar
from ..store import Store
from ..store.containers import ContainerRow
from .cgroups import find_cgroup
from .layout import ContainerLayout
from .spec import ContainerSpec

__all__ = ["commit_container"]


@contextmanager
def _paused(store: Store, row: ContainerRow, pause: bool) -> Iterator[None]:
    if not pause or row.state != "running":
        yield
        return
    try:
        cgroup = find_cgroup(row.container_id, row.pid)
    except BuildError:
        yield  # no freezer here: commit as Docker would without --pause
        return
    cgroup.freeze(True)
    try:
        yield
    finally:
        cgroup.freeze(False)


def commit_container(
    store: Store,
    row: ContainerRow,
    repository: str | None = None,
    author: str = "",
    message: str = "",
    changes: Sequence[str] = (),
    pause: bool = True,
) -> Digest:
    spec = ContainerSpec.from_json(row.spec)
    base = image_config(store, Digest.parse(row.image_id))
    config = replace(
        base.config,
        env=spec.config_env,
        cmd=spec.cmd or None,
        entrypoint=spec.entrypoint or None,
        working_dir="" if spec.cwd == "/" and not base.config.working_dir else spec.cwd,
        user=spec.user,
        labels=spec.labels,
    )
    config = apply_changes(config, changes)
    layout = ContainerLayout(store.root, row.container_id)
    with store.temp_dir("commit-") as scratch:
        tar_path = scratch / "layer.tar"
        with _paused(store, row, pause), open(tar_path, "wb") as tar_file:
            info = write_layer_tar(layout.upper, tar_file)
        store.layers.commit(tar_path, info.diff_id, info.size)
        created = rfc3339(time.time())
        image = ImageConfig(
            config=config,
            diff_ids=(*base.diff_ids, info.diff_id),
            history=(
                *base.history,
                HistoryEntry(created=created, created_by=spec.command_text(), comment=message, author=author),
            ),
            architecture=base.architecture,
            os=base.os,
            variant=base.variant,
            created=created,
            author=author,
        )
        image_id = put_image(store, image)
    if repository:
        store.tags.set(repository if ":" in repository.rsplit("/", 1)[-1] else f"{repository}:latest", image_id)
    return image_id
