"""Run every pybuild command with bad arguments, in this one process, and report what escaped as a traceback.

`python bad_arguments.py ROOT SCRATCH IMAGE` walks the argparse tree of `pybuild`, and for every command runs it with each
bad value in each positional and in each option that takes a value (missing files, a directory, /dev/null, words
where numbers go, empty strings), and with bad `--root`s. Standard input is empty, standard output and error are
captured. It prints one JSON list: for each run that raised anything but SystemExit, or printed "Traceback", its
argv and what escaped. The test runs it in a new session (no controlling terminal) with registries unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from buildkit_py.cli.main import main, make_parser


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every leaf command: its words and its parser."""
    groups = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
        return
    yield path, parser  # a bare group prints its help
    for name, child in groups[0].choices.items():
        yield from commands(child, (*path, name))


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0 and not isinstance(action, argparse._HelpAction)


def argv_lists(scratch: Path, image: str) -> Iterator[list[str]]:
    """Each command with bad positionals; then each option with each bad value, the positionals missing files, and
    once more naming a real image (so that a bad option is met after the image is found)."""
    folder = scratch / "a-folder"
    folder.mkdir(exist_ok=True)
    bad_values = ["/missing/dir/x", str(folder), "/dev/null", "not-a-number", "", "-3", "0"]
    for path, parser in commands(make_parser()):
        if not path:
            continue
        positionals = [a for a in parser._actions if not a.option_strings and _takes_value(a)]
        positionals = [a for a in positionals if not isinstance(a, argparse._SubParsersAction)]
        options = [a for a in parser._actions if a.option_strings and _takes_value(a)]
        for value in bad_values:
            yield [*path, *([value] * len(positionals))]
        for filler in ("/missing/dir/x", image):
            for option in options:
                for value in bad_values:
                    yield [*path, f"{option.option_strings[-1]}={value}", *([filler] * len(positionals))]
    for root in ("/etc/hostname", "/proc/nonexistent", "/dev/null", str(folder / "missing" / "deeper"), ""):
        yield ["--root", root, "images"]
        yield ["--root", root, "system", "df"]


def run_one(argv: list[str]) -> tuple[str | None, str]:
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8")
    escaped = None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(argv)
        except SystemExit:
            pass
        except BaseException:  # noqa: BLE001 - reporting what escaped is the point
            escaped = traceback.format_exc()
    stderr.flush()
    written = stderr.buffer.getvalue().decode(errors="replace")  # type: ignore[attr-defined]
    return escaped, written


def run_all(root: Path, scratch: Path, image: str) -> list[dict[str, object]]:
    failures: list[dict[str, object]] = []
    for argv in argv_lists(scratch, image):
        full = argv if argv[0] == "--root" else ["--root", str(root), *argv]
        escaped, stderr = run_one(full)
        if escaped is not None or "Traceback" in stderr:
            failures.append({"argv": full, "escaped": escaped, "stderr": stderr[-2000:]})
    return failures


if __name__ == "__main__":
    results = run_all(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    sys.__stdout__.write(json.dumps(results) + "\n")
