"""Bytes on their way somewhere: a layer pulled or pushed, a layer written into an archive.

The library says how far each item got through a `TransferCallback`; the CLI draws it (tqdm bars on a terminal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

__all__ = ["CountingReader", "Transfer", "TransferCallback", "counted", "ignore_transfer"]


@dataclass(frozen=True)
class Transfer:
    """`done` of `total` bytes of `item` (a layer's short digest) moved so far; `action` says where to: "Downloading",
    "Pushing", "Writing"."""

    item: str
    action: str
    done: int
    total: int


TransferCallback = Callable[[Transfer], None]


def ignore_transfer(transfer: Transfer) -> None:
    del transfer


class CountingReader:
    """A binary stream that reports the bytes read from it as one item's transfer."""

    def __init__(self, stream: BinaryIO, item: str, action: str, total: int, report: TransferCallback) -> None:
        self.stream = stream
        self.item = item
        self.action = action
        self.total = total
        self.report = report
        self.done = 0
        report(Transfer(item, action, 0, total))

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self.done += len(data)
            self.report(Transfer(self.item, self.action, self.done, self.total))
        return data


def counted(stream: BinaryIO, item: str, action: str, total: int, report: TransferCallback | None) -> BinaryIO:
    """`stream`, reporting what is read from it when there is someone to report to."""
    if report is None:
        return stream
    return cast(BinaryIO, CountingReader(stream, item, action, total, report))
