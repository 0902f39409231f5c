"""The import rules of docs/architecture.md ("What may import what"), checked on the source with `ast`.

Every import counts: at the top of a module, inside a function (the lazy ones the CLI relies on), and under
TYPE_CHECKING. A new top-level package or module fails `test_every_package_has_a_rule` until the document and
`MAY_IMPORT` say where it sits.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import buildkit_py

PACKAGE_DIR = Path(buildkit_py.__file__).resolve().parent
ROOT = "buildkit_py"

# Small modules of plain values that any package may use.
SHARED = frozenset(
    {"errors", "digest", "reference", "filemode", "gocsv", "gostring", "units", "transfer", "dataclass_cache", ROOT}
)

# What each top-level package (or module) of buildkit_py may import, besides itself and SHARED. Bottom up.
MAY_IMPORT: dict[str, frozenset[str]] = {
    ROOT: frozenset(),
    "errors": frozenset(),
    "digest": frozenset(),
    "reference": frozenset(),
    "filemode": frozenset(),
    "gocsv": frozenset(),
    "gostring": frozenset(),
    "units": frozenset(),
    "transfer": frozenset(),
    "dataclass_cache": frozenset(),
    "fs": frozenset(),
    "store": frozenset(),
    "layer": frozenset({"store"}),
    "solver": frozenset({"store", "fs"}),
    "context": frozenset({"solver", "store", "fs"}),
    "exec": frozenset({"solver", "context", "layer", "fs"}),
    "image": frozenset({"layer", "store", "fs"}),
    "frontend": frozenset({"solver", "context", "image"}),
    "session": frozenset(),
    "registry": frozenset({"image", "layer", "store"}),
    "sources": frozenset({"registry", "store"}),
    "worker": frozenset({"exec", "solver", "context", "image", "layer", "store", "session", "sources"}),
    "remotecache": frozenset({"solver", "image", "layer", "registry", "store"}),
    "analyze": frozenset({"image", "store"}),
    "container": frozenset({"exec", "image", "layer", "store", "fs", "frontend"}),
    "options": frozenset(),
    "stdin_context": frozenset({"exec"}),
    "fastpath": frozenset({"options", "context", "store"}),
    "reproduce": frozenset({"image", "store"}),
    "checking": frozenset({"options", "frontend", "context", "image", "store"}),
    "builder": frozenset(
        {
            "options",
            "fastpath",
            "checking",
            "frontend",
            "context",
            "solver",
            "worker",
            "exec",
            "image",
            "store",
            "registry",
            "remotecache",
            "session",
        }
    ),
    "cli": frozenset(),  # anything: see test_the_cli_may_import_anything_and_nothing_imports_it
}

# Imports for annotations only (under TYPE_CHECKING): a type named in a signature, never loaded at run time.
MAY_IMPORT_FOR_TYPES: dict[str, frozenset[str]] = {
    "options": frozenset({"frontend", "registry", "remotecache", "session"}),
    "remotecache": frozenset({"frontend"}),
}

# Third-party and standard modules that belong to one layer only.
OWNED_MODULES: dict[str, frozenset[str]] = {
    "argparse": frozenset({"cli"}),
    "tqdm": frozenset({"cli"}),
    "httpx": frozenset({"registry", "sources"}),
    "httpcore": frozenset({"registry"}),
    "sqlite3": frozenset({"store"}),
    "networkx": frozenset({"solver"}),
    "lark": frozenset({"frontend"}),
    "pickle": frozenset({"exec"}),
}


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module, dotted
    imported: str  # a buildkit_py module or package, dotted; or a top-level outside module's name
    line: int
    types_only: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    path = PACKAGE_DIR.parent.joinpath(*dotted.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                inside.update(id(child) for child in ast.walk(statement))
    return inside


def _imports_of(path: Path) -> Iterator[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for_types = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        types_only = id(node) in for_types
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno, types_only)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, node.module] if node.module else parts)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                imported = candidate if base.startswith(ROOT) and _is_module(candidate) else base
                yield Import(module, imported, node.lineno, types_only)


@cache
def _all_imports() -> tuple[Import, ...]:
    return tuple(found for path in sorted(PACKAGE_DIR.rglob("*.py")) for found in _imports_of(path))


def _unit(dotted: str) -> str:
    """The top-level package or module of buildkit_py that `dotted` belongs to."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _ours(found: Import) -> bool:
    return found.imported == ROOT or found.imported.startswith(ROOT + ".")


def _top_level_units() -> set[str]:
    units = {ROOT}
    for entry in PACKAGE_DIR.iterdir():
        if entry.is_dir() and (entry / "__init__.py").is_file():
            units.add(entry.name)
        elif entry.suffix == ".py" and entry.name != "__init__.py":
            units.add(entry.stem)
    return units


def test_every_package_has_a_rule() -> None:
    assert _top_level_units() == set(MAY_IMPORT), "add the new package to docs/architecture.md and MAY_IMPORT"


def test_each_package_imports_only_the_layers_beneath_it() -> None:
    broken = []
    for found in _all_imports():
        if not _ours(found):
            continue
        importer, imported = _unit(found.importer), _unit(found.imported)
        if importer == "cli" or importer == imported or imported in SHARED:
            continue
        allowed = MAY_IMPORT[importer] | (
            MAY_IMPORT_FOR_TYPES.get(importer, frozenset()) if found.types_only else set()
        )
        if imported not in allowed:
            broken.append(f"{found.importer}:{found.line} imports {found.imported}")
    assert broken == []


def test_the_shared_modules_import_only_each_other() -> None:
    for found in _all_imports():
        if _ours(found) and _unit(found.importer) in SHARED:
            assert _unit(found.imported) in SHARED, f"{found.importer}:{found.line} imports {found.imported}"


def test_the_cli_may_import_anything_and_nothing_imports_it() -> None:
    for found in _all_imports():
        if _ours(found) and _unit(found.imported) == "cli":
            assert _unit(found.importer) == "cli", f"{found.importer}:{found.line} imports {found.imported}"


def test_the_solver_runs_ops_only_through_its_protocols() -> None:
    """solver.py knows a graph of ops, keys, a cache and a worker: the worker and the cache are protocols, so it
    imports no executor, store or frontend."""
    for found in _all_imports():
        if found.importer == "buildkit_py.solver.solver" and _ours(found):
            assert _unit(found.imported) in {"solver", "digest", "errors"}, f"solver.py imports {found.imported}"


def test_exec_and_the_context_use_only_the_op_types_of_the_solver() -> None:
    """The executor and the context see file actions (plain data from solver/ops.py), never the solver itself."""
    for found in _all_imports():
        if _ours(found) and _unit(found.importer) in {"exec", "context"} and _unit(found.imported) == "solver":
            assert found.imported == "buildkit_py.solver.ops", f"{found.importer}:{found.line} imports {found.imported}"


def test_the_store_is_reached_by_the_solver_only_for_the_step_log() -> None:
    for found in _all_imports():
        if _ours(found) and _unit(found.importer) == "solver" and _unit(found.imported) == "store":
            assert found.imported == "buildkit_py.store.steplog", f"{found.importer}:{found.line}"


def test_only_the_owner_of_a_library_imports_it() -> None:
    broken = []
    for found in _all_imports():
        if _ours(found):
            continue
        owners = OWNED_MODULES.get(found.imported.split(".")[0])
        if owners is not None and _unit(found.importer) not in owners:
            broken.append(f"{found.importer}:{found.line} imports {found.imported}")
    assert broken == []


def test_only_the_fork_server_unpickles() -> None:
    """Requests go pickled from the executor to its fork server; nothing a sandbox writes is ever unpickled."""
    users = {found.importer for found in _all_imports() if found.imported == "pickle"}
    assert users == {"buildkit_py.exec.forkserver"}
