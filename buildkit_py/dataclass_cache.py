"""The methods `@dataclass` writes for each class, compiled once and kept beside the module's bytecode.

For every class, `@dataclass` writes the source text of `__init__`, `__repr__`, `__eq__`, `__hash__` (and, for a
frozen class, `__setattr__` and `__delattr__`) and compiles it: on Python 3.11 about half of what importing
buildkit_py costs, some 50 ms of CPU at the start of every command. The text depends only on the class's fields, so
the code compiled from it is kept, as a .pyc keeps a module's code, in `__pycache__/<module>.dataclasses.<tag>`
beside the module, keyed by the text's blake3; a class whose fields change has another text and is compiled anew.

`@dataclass` calls `exec(text, module_globals, namespace)`; `install()` gives the dataclasses module an `exec` of
its own that looks the text up first. Only buildkit_py's modules are cached. The files are read and written only
while the process's root directory is the one it started with: a sandbox after pivot_root sees an image, and no
file of an image is ever read as code.
"""

from __future__ import annotations

import atexit
import builtins
import dataclasses
import marshal
import os
import sys
from importlib._bootstrap_external import MAGIC_NUMBER
from types import CodeType
from typing import Any

import blake3

__all__ = ["install", "save"]

_HEADER = b"pybuild-dataclasses-1\n" + MAGIC_NUMBER
_PACKAGE = "buildkit_py."


class _ModuleCache:
    """The compiled methods of one module's dataclasses: those found in its file, and those this process used."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found = _read(path) if _same_root() else {}
        self.used: dict[bytes, CodeType] = {}

    def code(self, text: str) -> CodeType:
        key = blake3.blake3(text.encode("utf-8", "surrogatepass")).digest(16)
        code = self.found.get(key)
        if code is None:
            code = compile(text, "<string>", "exec")
        self.used[key] = code
        return code

    def save(self) -> None:
        """Write what this process used, when it differs from the file (so entries of changed classes go)."""
        if not self.used or self.used.keys() == self.found.keys() or sys.dont_write_bytecode or not _same_root():
            return
        folder = os.path.dirname(self.path)
        temporary = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(folder, exist_ok=True)
            with open(temporary, "wb") as file:
                file.write(_HEADER + marshal.dumps(self.used))
            os.replace(temporary, self.path)
            self.found = dict(self.used)
        except OSError:  # a read-only install: compiled each time, as without this module
            try:
                os.unlink(temporary)
            except OSError:
                pass


def _read(path: str) -> dict[bytes, CodeType]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return {}
    if not data.startswith(_HEADER):
        return {}
    try:
        found = marshal.loads(data[len(_HEADER) :])
    except (ValueError, EOFError, TypeError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {key: code for key, code in found.items() if isinstance(key, bytes) and isinstance(code, CodeType)}


_caches: dict[str, _ModuleCache] = {}
_root: tuple[int, int] | None = None


def _root_identity() -> tuple[int, int]:
    info = os.stat("/")
    return info.st_dev, info.st_ino


def _same_root() -> bool:
    try:
        return _root is not None and _root_identity() == _root
    except OSError:
        return False


def _cache_for(namespace: dict[str, Any]) -> _ModuleCache | None:
    name = namespace.get("__name__")
    source = namespace.get("__file__")
    if not isinstance(name, str) or not name.startswith(_PACKAGE) or not isinstance(source, str):
        return None
    cache = _caches.get(name)
    if cache is None:
        folder, file = os.path.split(source)
        stem = file.rpartition(".")[0]
        tag = sys.implementation.cache_tag or "python"
        cache = _caches[name] = _ModuleCache(os.path.join(folder, "__pycache__", f"{stem}.dataclasses.{tag}"))
    return cache


def _exec(source: Any, globals: dict[str, Any] | None = None, locals: Any = None) -> None:
    cache = _cache_for(globals) if isinstance(source, str) and isinstance(globals, dict) else None
    builtins.exec(source if cache is None else cache.code(source), globals, locals)  # noqa: S102 - what @dataclass wrote


def install() -> None:
    """From now on, dataclasses of buildkit_py's modules use the kept code; `save` (also at exit) writes it."""
    global _root
    if getattr(dataclasses, "exec", None) is _exec:
        return
    _root = _root_identity()
    dataclasses.exec = _exec  # type: ignore[attr-defined]

    atexit.register(save)


def save() -> None:
    """Keep what this process compiled. Called at exit, and by commands that end with os._exit."""
    for cache in list(_caches.values()):
        cache.save()
