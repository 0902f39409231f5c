"""`pybuild`: a thin command line over the library, with Docker's conventions and exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..dataclass_cache import save

if TYPE_CHECKING:
    from ..errors import BuildError

# Each command lives in cli/cmd_<name>.py with `register(subparsers)`, which sets `func(args) -> int` as default.
COMMAND_MODULES = (
    "build",
    "images",
    "image",
    "history",
    "inspect",
    "tag",
    "rmi",
    "save",
    "load",
    "import_",
    "push",
    "pull",
    "login",
    "analyze",
    "diff",
    "cache",
    "system",
    "graph",
    # containers
    "run",
    "create",
    "start",
    "stop",
    "restart",
    "kill",
    "rm",
    "ps",
    "logs",
    "wait",
    "rename",
    "exec",
    "attach",
    "commit",
    "cp",
    "port",
    "export",
    "top",
    "pause",
    "unpause",
    "container",
    "volume",
)


COMMAND_WORDS = frozenset({*(name.rstrip("_") for name in COMMAND_MODULES), "logout"})


def with_build_word(argv: Sequence[str]) -> list[str]:
    """`pybuild -t app .` means `pybuild build -t app .`, as the docs (and a Docker user's fingers) write it: a
    build flag, `-`, or a path as the first word after the global options is a build."""
    arguments = list(argv)
    position = 0
    while position < len(arguments):
        word = arguments[position]
        if word == "--root":
            position += 2
        elif word.startswith("--root="):
            position += 1
        else:
            break
    if position >= len(arguments):
        return arguments
    first = arguments[position]
    if first in COMMAND_WORDS or first in ("-h", "--help"):
        return arguments
    if first.startswith(("-", ".")) or "/" in first or Path(first).is_dir():
        return [*arguments[:position], "build", *arguments[position:]]
    return arguments


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word of `argv`, found before parsing, so that only its module needs importing."""
    words = iter(argv)
    for word in words:
        if word == "--root":
            next(words, None)
        elif not word.startswith("-"):
            return word
        elif word in ("-h", "--help"):
            return None
    return None


def make_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `only` a known command, just that command's (help lists every command)."""
    parser = argparse.ArgumentParser(
        prog="pybuild",
        description="Build, store and ship OCI images from Dockerfiles.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="store folder (default: $PYBUILD_ROOT, else /var/lib/pybuild as root, ~/.local/share/pybuild otherwise)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names: tuple[str, ...] = COMMAND_MODULES
    if only is not None and only.replace("import", "import_") in COMMAND_MODULES:
        names = (only.replace("import", "import_"),)
    for name in names:
        try:
            module = importlib.import_module(f"{__package__}.cmd_{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.cmd_{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def exit_status_of(error: BuildError) -> int:
    """1, except for a RUN that failed: its own exit status, as `docker build` with the classic builder exits
    (`RUN exit 3` exits 3; a step killed by signal N exits 128+N)."""
    from ..errors import StepError  # lazy: errors loads after `run` forks its monitor (see main)

    if isinstance(error, StepError) and error.exit_status:
        return error.exit_status
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    arguments = with_build_word(sys.argv[1:] if argv is None else argv)
    command = _command_in(arguments)
    if command == "run":
        from ..container.spawn import fork_early  # lazy: only `run` forks early

        fork_early()  # the container's monitor imports what it needs while we parse (container/spawn.py)
    from ..errors import BuildError  # after that fork: it is the first module that costs

    parser = make_parser(command)
    args = parser.parse_args(arguments)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        status: int = args.func(args)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_status_of(error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # the machine said no (a full disk, a permission) where no command expected it
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {(error.strerror or str(error)).lower()}{where}", file=sys.stderr)
        return 1
    return status


# Commands that hold no file, thread or connection open once they return, so the process may end at once: tearing
# the interpreter down (every module, every object) costs more than the container a `run --rm` starts, and a
# sixth of a no-op rebuild. A build's store connection may go unclosed: each transaction was committed in its write.
_EXIT_AT_ONCE = frozenset({"build", "run", "start", "exec", "attach"})


def entry() -> None:
    """The `pybuild` command."""
    arguments = sys.argv[1:]
    status = main(arguments)
    if _command_in(with_build_word(arguments)) in _EXIT_AT_ONCE:
        save()  # what atexit would have done
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:
                pass
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
