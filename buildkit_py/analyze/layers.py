"""An image in the store as a list of layers, each tied to its history entry and Dockerfile line."""

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


def dockerfile_line(comment: str) -> str:
    """ "Dockerfile:7" from a history comment the builder wrote, "" when there is none."""
    match = _SOURCE_RE.search(comment)
    return f"{match.group(1)}:{match.group(2)}" if match else ""


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

    @property
    def created_by(self) -> str:
        return self.history.created_by if self.history else ""

    @property
    def step(self) -> str:
        return step_text(self.created_by)

    @property
    def dockerfile_line(self) -> str:
        return dockerfile_line(self.history.comment) if self.history else ""

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


def layer_history(config: ImageConfig) -> list[HistoryEntry | None]:
    """The history entry of each diff_id, in order; entries with empty_layer have no layer (as dive pairs them)."""
    entries: Iterator[HistoryEntry] = (entry for entry in config.history if not entry.empty_layer)
    return [next(entries, None) for _ in config.diff_ids]


def load_image(
    source: Store, name: str, hash_content: bool = False, cache: dict[Digest, LayerFiles] | None = None
) -> Image:
    """Read every layer's headers; `cache` shares layers between two images (by diff_id) when diffing."""
    image_id = source.resolve(name)
    config = image_config(source, image_id)
    layers = []
    histories: Sequence[HistoryEntry | None] = layer_history(config)
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
            )
        )
    return Image(name=name, image_id=image_id, config=config, layers=tuple(layers))
