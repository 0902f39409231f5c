"""Bytes moving for `pull`, `push`, `save` and `build -o`: a tqdm bar per layer on a terminal, finished (and left on
the screen) when its last byte moved. Off a terminal only the commands' own lines are printed, as Docker does."""

from __future__ import annotations

import sys
import threading
from typing import IO, Any, Self

from ..transfer import Transfer


class TransferView:
    """Takes a command's lines (`line`) and its transfers (call it); use it as a context manager."""

    def __init__(self, stream: IO[str] | None = None, *, bars: bool | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bars = (not quiet) and (self.stream.isatty() if bars is None else bars)
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], Any] = {}
        self._finished: set[tuple[str, str]] = set()

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self._open:
                from tqdm import tqdm  # lazy: tqdm (76 modules) only for a terminal's bars

                tqdm.write(text, file=self.stream)
            else:
                self.stream.write(text + "\n")
                self.stream.flush()

    def __call__(self, transfer: Transfer) -> None:
        if not self.bars:
            return
        key = (transfer.item, transfer.action)
        with self._lock:
            if key in self._finished:
                return
            bar = self._open.get(key)
            if bar is None:
                from tqdm import tqdm  # lazy: tqdm (76 modules) only for a terminal's bars

                bar = self._open[key] = tqdm(
                    desc=f"{transfer.item}: {transfer.action}",
                    total=transfer.total or None,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1000,
                    file=self.stream,
                    leave=True,
                    dynamic_ncols=True,
                )
            bar.update(max(transfer.done - bar.n, 0))
            if transfer.total and transfer.done >= transfer.total:
                bar.close()
                del self._open[key]
                self._finished.add(key)

    def close(self) -> None:
        with self._lock:
            for bar in self._open.values():
                bar.close()
            self._open.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
