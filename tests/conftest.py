from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import BASE_IMAGE, base_context


@pytest.fixture(scope="session")
def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the whole session, so the busybox base is built once."""
    return tmp_path_factory.mktemp("pybuild-root")


@pytest.fixture(scope="session")
def base_store(session_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from buildkit_py.builder import build
    from buildkit_py.store import Store

    store = Store(session_root)
    build(base_context(tmp_path_factory.mktemp("base")), tags=[BASE_IMAGE], store=store)
    yield store
