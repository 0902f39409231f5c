"""What every command shares: opening the store named by --root."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Store


def open_store(args: argparse.Namespace) -> Store:
    from ..store import Store, default_root

    return Store(args.root or default_root())
