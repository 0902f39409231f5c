"""Every import inside a function says why it is there (issue 9): the project keeps imports lazy so that a no-op
rebuild, `pybuild run` and `pybuild --help` load little, and a function-local import is otherwise a hidden cycle or a
forgotten tidy-up. The reason is a `#` comment on the import's line, on the line directly above it, or directly above
the first of a run of consecutive imports (the run shares one reason). Imports under `if TYPE_CHECKING:` are exempt.

Comments are found without `tokenize` (which alone would take most of a second over the package): an import statement
holds no string, so a `#` on its lines is a comment; the line above it is a comment line when it starts with `#` and
lies after the end of the statement before (so it is not inside a string).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import buildkit_py

PACKAGE_DIR = Path(buildkit_py.__file__).resolve().parent

_IMPORTS = (ast.Import, ast.ImportFrom)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
# A line that may hold an import inside a function (indented, or after `:` or `;`): files without one are not parsed.
_MAYBE_LOCAL_IMPORT = re.compile(r"^[ \t]+(?:from|import)[ \t]|[:;][ \t]*(?:from|import)[ \t]", re.MULTILINE)


def _statement_lists(node: ast.AST) -> Iterator[Sequence[ast.stmt]]:
    for field in ("body", "orelse", "finalbody"):
        statements = getattr(node, field, None)
        if isinstance(statements, list) and statements and isinstance(statements[0], ast.stmt):
            yield statements
    for handler in getattr(node, "handlers", ()):
        yield handler.body
    for case in getattr(node, "cases", ()):
        yield case.body


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _local_import_runs(node: ast.AST, in_function: bool = False) -> Iterator[tuple[int, list[ast.stmt]]]:
    """Runs of consecutive import statements inside a function body, outside `if TYPE_CHECKING:`, each with the last
    line of the statement before it (0 when the run opens its block)."""
    in_function = in_function or isinstance(node, _FUNCTIONS)
    for statements in _statement_lists(node):
        before, run = 0, list[ast.stmt]()
        for statement in statements:
            if isinstance(statement, _IMPORTS):
                run.append(statement)
                continue
            if run and in_function:
                yield before, run
            run = []
            before = statement.end_lineno or statement.lineno
            if not _is_type_checking(statement):
                yield from _local_import_runs(statement, in_function)
        if run and in_function:
            yield before, run


def _has_reason(lines: Sequence[str], statement: ast.stmt, before: int) -> bool:
    first, last = statement.lineno, statement.end_lineno or statement.lineno
    above = first - 1
    if above > before and lines[above - 1].lstrip().startswith("#"):
        return True
    return any("#" in lines[number - 1] for number in range(first, last + 1))


def _bare_lines(source: str) -> Iterator[int]:
    """The lines of local imports with no reason of their own nor one above an earlier import of their run."""
    lines = source.splitlines()
    for before, run in _local_import_runs(ast.parse(source)):
        for statement in run:
            if _has_reason(lines, statement, before):
                break
            yield statement.lineno
            before = statement.end_lineno or statement.lineno


def _offenders(path: Path) -> Iterator[str]:
    source = path.read_text(encoding="utf-8")
    if _MAYBE_LOCAL_IMPORT.search(source):
        for line in _bare_lines(source):
            yield f"{path.relative_to(PACKAGE_DIR.parent)}:{line}"


def test_every_function_local_import_gives_its_reason() -> None:
    offenders = [found for path in sorted(PACKAGE_DIR.rglob("*.py")) for found in _offenders(path)]
    assert offenders == [], (
        f"{len(offenders)} imports inside functions without a reason comment "
        "(move them to the top of the module, or say why they are lazy):\n" + "\n".join(offenders)
    )


def test_the_checker_finds_what_it_should() -> None:
    source = """
import os  # module level: never an offender


def f():
    import json
    # lazy: a reason for the run below
    import csv
    import re

    x = 1
    import glob  # lazy: a reason on the line
    s = '''
    # not a comment: inside a string'''
    if x:
        import shutil
    from typing import TYPE_CHECKING
    if TYPE_CHECKING:
        import pathlib


class C:
    import struct

    def g(self):
        import zlib
"""
    assert list(_bare_lines(source)) == [6, 16, 17, 26]
    assert _MAYBE_LOCAL_IMPORT.search("def f(): import os\n")
    assert _MAYBE_LOCAL_IMPORT.search("def f():\n    x = 1; import os\n")
    assert not _MAYBE_LOCAL_IMPORT.search("import os\nfrom re import match\n")
