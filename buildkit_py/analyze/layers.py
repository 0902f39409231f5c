"""An image in the store as a list of layers, each tied to its history entry and Dockerfile line.

Which layers are the base image's: pybuild's builder writes the base's history first, then one entry per instruction
of the Dockerfile with the comment `buildkit_py: FILE:LINE`. The Dockerfile's own entries are the last run of such
entries whose lines increase within one file (a stage built on an earlier stage of the same Dockerfile continues
that run); every layer before its first entry is the base's. A base that pybuild built from another Dockerfile is
told apart when its lines do not increase into ours, which is the usual case (both start near line 1). An image with
no such entry was not built here: none of its layers is known to be a base's.

A layer that `pybuild commit` (or `docker commit`, or an import) made has no Dockerfile line: its history entry
holds the container's command, the author and the message, and analyze shows those instead. Such entries at the end
of the history (commits on top of a built image) are passed over when looking for the Dockerfile's run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..digest import Digest
from ..image.config import HistoryEntry, ImageConfig
from ..image.stored import image_config
from ..store import Store
from .filetree import LayerFiles, read_layer

_SOURCE_RE = re.compile(r"buildkit_py:\s*(\S+?):(\d+)")
_BUILDKIT_SUFFIX = " # buildkit"
_OWN_COMMENT = "buildkit_py"
_BUILDER_COMMENT_RE = re.compile(r"buildkit_py(:\s*\S+?:\d+)?")
_BUILDKIT_COMMENT = "buildkit.dockerfile.v0"  # what BuildKit's Dockerfile frontend writes in every entry


def dockerfile_line(comment: str) -> str:
    """ "Dockerfile:7" from a history comment the builder wrote, "" when there is none."""
    match = _SOURCE_RE.search(comment)
    return f"{match.group(1)}:{match.group(2)}" if match else ""


def commit_message(comment: str) -> str:
    """The message a commit or import left in a history comment; "" for the comment a builder writes."""
    if comment == _BUILDKIT_COMMENT or _BUILDER_COMMENT_RE.fullmatch(comment):
        return ""
    return comment


def _source(comment: str) -> tuple[str, int] | None:
    match = _SOURCE_RE.search(comment)
    return (match.group(1), int(match.group(2))) if match else None


def own_history_start(history: Sequence[HistoryEntry]) -> int:
    """The index of the first history entry written for the image's own Dockerfile; len(history) when none was."""
    start = len(history)
    following: tuple[str, int] | None = None
    end = len(history)
    while end > 0 and (history[end - 1].author or commit_message(history[end - 1].comment)):
        end -= 1  # commits on top of a built image: the run of its Dockerfile's entries lies beneath them
    for index in range(end - 1, -1, -1):
        comment = history[index].comment
        if not comment.startswith(_OWN_COMMENT):
            break
        source = _source(comment)
        if source is not None:  # an entry without a line (a --label) belongs to the run it sits in
            if following is not None and (source[0] != following[0] or source[1] >= following[1]):
                break
            following = source
        start = index
    return start if following is not None else len(history)


def step_text(created_by: str) -> str:
    """A history `created_by` as the instruction a reader recognises: "RUN rm /x" for "RUN /bin/sh -c rm /x # buildkit"."""
    text = created_by
    text = text.removesuffix(_BUILDKIT_SUFFIX)
    text = text.replace("/bin/sh -c #(nop) ", "").strip()
    if text.startswith("/bin/sh -c "):
        text = "RUN " + text[len("/bin/sh -c ") :]
    elif text.startswith("RUN /bin/sh -c "):
        text = "RUN " + text[len("RUN /bin/sh -c ") :]
    return text


@dataclass(frozen=True)
class Layer:
    index: int
    diff_id: Digest
    tar_size: int
    history: HistoryEntry | None
    files: LayerFiles
    base: bool = False  # made by the base image, not by a step of the Dockerfile that built this image

    @property
    def created_by(self) -> str:
        return self.history.created_by if self.history else ""

    @property
    def step(self) -> str:
        return step_text(self.created_by)

    @property
    def dockerfile_line(self) -> str:
        return dockerfile_line(self.history.comment) if self.history and not self.message else ""

    @property
    def author(self) -> str:
        return self.history.author if self.history else ""

    @property
    def message(self) -> str:
        """The commit's (or import's) message; "" for a layer a build made."""
        return commit_message(self.history.comment) if self.history else ""

    @property
    def label(self) -> str:
        """How findings name the layer: "Dockerfile:7 RUN rm /x", or "layer 3" when nothing better is known."""
        parts = [part for part in (self.dockerfile_line, self.step) if part]
        return " ".join(parts) if parts else f"layer {self.index}"


@dataclass(frozen=True)
class Image:
    name: str
    image_id: Digest
    config: ImageConfig
    layers: tuple[Layer, ...]

    @property
    def tar_size(self) -> int:
        return sum(layer.tar_size for layer in self.layers)

    @property
    def content_size(self) -> int:
        return sum(layer.files.content_size for layer in self.layers)

    @property
    def base_layers(self) -> int:
        """How many of the first layers are the base image's (0 when unknown: an image not built here)."""
        return sum(1 for layer in self.layers if layer.base)


def layer_history(config: ImageConfig) -> list[HistoryEntry | None]:
    """The history entry of each diff_id, in order; entries with empty_layer have no layer (as dive pairs them)."""
    entries: Iterator[HistoryEntry] = (entry for entry in config.history if not entry.empty_layer)
    return [next(entries, None) for _ in config.diff_ids]


def base_layer_count(config: ImageConfig) -> int:
    """How many layers come from entries before the Dockerfile's first instruction (see the module's docstring)."""
    start = own_history_start(config.history)
    if start == len(config.history):
        return 0
    before = config.history[:start]
    return min(len(config.diff_ids), sum(1 for entry in before if not entry.empty_layer))


def load_image(
    source: Store, name: str, hash_content: bool = False, cache: dict[Digest, LayerFiles] | None = None
) -> Image:
    """Read every layer's headers; `cache` shares layers between two images (by diff_id) when diffing."""
    image_id = source.resolve(name)
    config = image_config(source, image_id)
    layers = []
    histories: Sequence[HistoryEntry | None] = layer_history(config)
    base_count = base_layer_count(config)
    for index, diff_id in enumerate(config.diff_ids):
        files = cache.get(diff_id) if cache is not None else None
        if files is None:
            with source.layers.open(diff_id) as stream:
                files = read_layer(stream, hash_content=hash_content)
            if cache is not None:
                cache[diff_id] = files
        layers.append(
            Layer(
                index=index,
                diff_id=diff_id,
                tar_size=source.layers.size(diff_id),
                history=histories[index],
                files=files,
                base=index < base_count,
            )
        )
    return Image(name=name, image_id=image_id, config=config, layers=tuple(layers))
